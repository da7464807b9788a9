"""Shared by the runner tests: waiting for a condition with a bound, never a hopeful sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool]], Awaitable[None]]:
    """Polls a predicate until it holds; fails the test after 10 s."""
    return _wait_until
