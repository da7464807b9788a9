"""Checks of `stigmer run`'s input that need no daemon."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cli.errors import UsageError

# The same rule the daemon applies (task.proto, CommandSpec.env).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """`["A=1", "B=x=y"]` → `{"A": "1", "B": "x=y"}`; a later pair wins, as in docker."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--env {pair!r}: expected NAME=VALUE")
        if not _ENV_NAME.fullmatch(name):
            raise UsageError(
                f"--env {pair!r}: {name!r} is not a valid variable name "
                "(letters, digits and _, not starting with a digit)"
            )
        env[name] = value
    return env
