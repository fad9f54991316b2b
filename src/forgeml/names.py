"""Names that become file names, lock names, MLflow experiment and registered-model names:
lower-case letters, digits, '_' and '-', so that a name can never point outside its folder."""

from __future__ import annotations

import re

from forgeml.errors import ConfigError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def check_name(name: str, what: str = "pipeline name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > 64:
        raise ConfigError(f"{what} {name!r} is not valid: use 1-64 lower-case letters, digits, "
                          "'_' or '-', starting with a letter or digit (e.g. digits, recsys).")
    return name
