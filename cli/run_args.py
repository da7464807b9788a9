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


def parse_secrets(names: Iterable[str]) -> list[str]:
    """`--secret NAME` values, checked and without repeats (values never go here)."""
    from shared.secretstore import valid_name

    checked: list[str] = []
    for name in names:
        if not valid_name(name):
            hint = ""
            if "=" in name:
                hint = "; give only the name: the value comes from `stigmer secrets set`"
            # Never echo what may be a value.
            shown = name.partition("=")[0] if "=" in name else name
            raise UsageError(
                f"--secret {shown!r}: not a valid secret name (capital letters, digits "
                f"and _, not starting with a digit, such as GITHUB_TOKEN){hint}"
            )
        if name not in checked:
            checked.append(name)
    return checked
