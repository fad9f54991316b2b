"""Credentials reach the MLflow client and nothing else. A password in an http(s) tracking URI
moves into MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (read by MLflow's client, never
stored), so the URI ForgeML holds, shows and passes on is clean; anything that is shown or
stored goes through `redact` as a last line of defence."""

from __future__ import annotations

import base64
import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
MASK = "***"

_URI_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@",
                           re.IGNORECASE)
# key=value or key: value where the key names a secret (password, token, api_key, ...).
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credentials?))"
    r"(?P<sep>\s*[=:]\s*)(?P<value>[^\s,;'\"&]+)", re.IGNORECASE)
_SECRET_KEY = re.compile(r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|"
                         r"credentials?)$", re.IGNORECASE)


def mask_uri(uri: str) -> str:
    """`uri` with its password (if any) replaced by ***."""
    return _URI_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", uri)


def has_password(uri: str) -> bool:
    return bool(_URI_PASSWORD.search(uri))


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.rsplit(".", 1)[-1]))


def redact(text: str) -> str:
    """`text` with URI passwords and `secret_key=value` values masked."""
    text = mask_uri(text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)


def client_uri(uri: str) -> str:
    """An http(s) URI without its user info; the user and password go to the variables
    MLflow's client reads (they are never written anywhere). Database URIs keep theirs (the
    driver needs them) and are only ever shown through `mask_uri`."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    if parts.username:
        os.environ[USERNAME_ENV] = unquote(parts.username)
    if parts.password is not None:
        os.environ[PASSWORD_ENV] = unquote(parts.password)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def basic_auth_header() -> dict[str, str]:
    """The Authorization header MLflow's client would send, for ForgeML's own HTTP checks."""
    user, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if not (user and password):
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def clean_environment() -> None:
    """Move credentials out of $MLFLOW_TRACKING_URI, so that the stages, DVC and DDP ranks this
    process starts inherit a clean URI and the credentials only as the client's variables."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = client_uri(uri)
