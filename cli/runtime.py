"""Running a command's coroutine: one asyncio.run per command, exit code out."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import typer


def run(coroutine: Coroutine[Any, Any, int | None]) -> None:
    """Runs the command's coroutine; a non-zero result becomes the exit code.

    `CliError`s pass through to `cli.main.main`, which prints them.
    """
    code = asyncio.run(coroutine)
    if code:
        raise typer.Exit(code)
