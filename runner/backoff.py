"""Retry delays shared by every call the runner repeats."""

from __future__ import annotations

from collections.abc import Iterator


def delays(first: float = 0.05, cap: float = 1.0) -> Iterator[float]:
    """Doubling delays from `first`, never above `cap`, without end."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)
