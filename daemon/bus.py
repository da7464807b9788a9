"""Wake-ups for whoever waits on a key (a task's events, the queue, a cancel).

Readers take a listener before they read the store and wait on it only when the
store had nothing new, so a change between the read and the wait is never missed.
The store stays the source of truth: a wake-up carries no data."""

from __future__ import annotations

import asyncio

QUEUE = "queue"
# Every stored event, of tasks, runners and the daemon (EventService).
ALL = "all"


def cancel_key(task_id: str) -> str:
    return "cancel:" + task_id


def events_key(task_id: str) -> str:
    return "events:" + task_id


class Bus:
    def __init__(self) -> None:
        self._listeners: dict[str, asyncio.Event] = {}

    def listener(self, key: str) -> asyncio.Event:
        event = self._listeners.get(key)
        if event is None:
            event = self._listeners[key] = asyncio.Event()
        return event

    def notify(self, key: str) -> None:
        event = self._listeners.pop(key, None)
        if event is not None:
            event.set()


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Waits for `event` at most `seconds`; True when it fired."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
