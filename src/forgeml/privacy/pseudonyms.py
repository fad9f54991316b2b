"""Pseudonymous ids: user and item identifiers replaced in prepare by a keyed hash (HMAC-SHA256),
so prepared data, models, MLflow artifacts and reports hold no raw id. The same key gives the
same pseudonym (runs and retraining line up; serving maps a raw id with the key); without the key
nobody can map a pseudonym back or test a guess. The key comes from the environment only: never
from params.yaml, never logged."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

import numpy as np

from forgeml.errors import ConfigError, DataError

KEY_VARIABLE = "FORGEML_PSEUDONYM_KEY"
KEY_FILE_VARIABLE = "FORGEML_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
PREFIX = {"user": "u_", "item": "i_"}
HEX_CHARS = 20  # 80 bits: collisions are checked, and would need ~1e12 ids to be likely


def load_key() -> bytes:
    """The key from $FORGEML_PSEUDONYM_KEY, or the file $FORGEML_PSEUDONYM_KEY_FILE names."""
    path = os.environ.get(KEY_FILE_VARIABLE)
    if path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as err:
            raise ConfigError(f"${KEY_FILE_VARIABLE} names {path}, which cannot be read "
                              f"({err.strerror}).") from None
    else:
        key = os.environ.get(KEY_VARIABLE, "").encode()
    if not key:
        raise ConfigError(
            f"data.anonymise.pseudonymise_ids=true needs a secret key: set ${KEY_VARIABLE}, or "
            f"${KEY_FILE_VARIABLE} to a file holding it (e.g. `openssl rand -hex 32`). It is "
            "never stored in params.yaml or logged; keep it to map ids the same way next time.")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"The pseudonym key has {len(key)} bytes: use at least "
                          f"{MIN_KEY_BYTES} random bytes (e.g. `openssl rand -hex 32`).")
    return key


def pseudonym(key: bytes, kind: str, raw_id: str) -> str:
    digest = hmac.new(key, f"{kind}:{raw_id}".encode(), hashlib.sha256).hexdigest()
    return PREFIX[kind] + digest[:HEX_CHARS]


def pseudonymise(key: bytes, kind: str, raw_ids: np.ndarray) -> np.ndarray:
    """Each id's pseudonym; DataError if two distinct ids would share one."""
    unique, inverse = np.unique(raw_ids.astype(str), return_inverse=True)
    mapped = np.array([pseudonym(key, kind, value) for value in unique.tolist()])
    if len(set(mapped.tolist())) != len(unique):
        raise DataError(f"Two {kind} ids got the same pseudonym: use another key.")
    return mapped[inverse]


def key_id(key: bytes) -> str:
    """Names the key without revealing it (the data card shows which key was used)."""
    return hmac.new(key, b"forgeml key id", hashlib.sha256).hexdigest()[:12]


def translator(catalog: dict, kind: str):
    """raw id -> the catalog's id for it (identity unless the data was pseudonymised; then the
    key must be set here too, and be the one the data was prepared with)."""
    if not catalog.get("pseudonymised"):
        return str
    key = load_key()
    if catalog.get("pseudonym_key_id") != key_id(key):
        raise ConfigError("The pseudonym key set here is not the one this model's data was "
                          f"prepared with: set ${KEY_VARIABLE} to that key.")
    # A pseudonym itself (from `recommend --all`, a report) is taken as it is.
    shape = re.compile(f"{PREFIX[kind]}[0-9a-f]{{{HEX_CHARS}}}")
    return lambda raw: str(raw) if shape.fullmatch(str(raw)) else pseudonym(key, kind, str(raw))
