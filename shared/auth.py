"""The bearer tokens that guard the daemon's gRPC API."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

METADATA_KEY = "authorization"
SCHEME = "Bearer "
# Environment variables a runner is started with (never secrets of the user).
ENV_ADDRESS = "STIGMER_DAEMON_ADDRESS"
ENV_RUNNER_ID = "STIGMER_RUNNER_ID"
ENV_RUNNER_TOKEN = "STIGMER_RUNNER_TOKEN"
ENV_DAEMON_PID = "STIGMER_DAEMON_PID"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying `token`."""
    return ((METADATA_KEY, SCHEME + token),)


def token_from_metadata(metadata: object) -> str | None:
    """The bearer token in a call's invocation metadata, if any."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == METADATA_KEY and isinstance(value, str) and value.startswith(SCHEME):
            return value[len(SCHEME) :]
    return None


def read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def sendable(token: str) -> bool:
    """Only printable ASCII can travel in a gRPC header."""
    return token.isascii() and token.isprintable()


def load_or_create_token(path: Path) -> str:
    """The daemon's client token, created 0600 on first start (and anew when the
    file was damaged: a token nobody can send would lock every client out)."""
    try:
        existing = read_token(path)
    except UnicodeDecodeError:
        existing = None
    if existing and sendable(existing):
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token
