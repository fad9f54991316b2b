"""Checking inputs before they reach a model: a request's JSON (every problem is a RequestError
with the HTTP status and a message that says what to send instead) and the column a batch
prediction reads."""

from __future__ import annotations

from typing import Any

from forgeml.errors import ForgeMLError


class RequestError(ForgeMLError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def items(body: Any, plural: str, singular: str, max_batch: int) -> list:
    """`body[plural]` (a non-empty list) or `[body[singular]]`."""
    if not isinstance(body, dict):
        raise RequestError(422, f'Send a JSON object, e.g. {{"{plural}": [...]}}.')
    unknown = set(body) - {plural, singular, "k"}
    if unknown:
        raise RequestError(422, f"Unknown field(s) {', '.join(sorted(unknown))}; expected "
                                f"'{plural}' (a list) or '{singular}'.")
    if (plural in body) == (singular in body):
        raise RequestError(422, f"Give either '{plural}' (a list) or '{singular}'.")
    values = body[plural] if plural in body else [body[singular]]
    if not isinstance(values, list) or not values:
        raise RequestError(422, f"'{plural}' must be a non-empty list.")
    if len(values) > max_batch:
        raise RequestError(413, f"{len(values)} {plural} in one request; the limit is "
                                f"{max_batch}. Split the request.")
    return values


def whole_number(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(422, f"'{name}' must be a whole number from {low} to {high}.")
    return value


def input_column(frame, name: str, what: str) -> list:
    """The values of a batch prediction's input column, or a DataError naming the fix."""
    from forgeml.errors import DataError

    if name not in frame.columns:
        raise DataError(f"The input has no '{name}' column (it has {list(frame.columns)}); "
                        f"name the {what} column with --column.")
    return frame[name].tolist()
