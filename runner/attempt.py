"""What a running attempt shares, whatever its kind (a command or an agent): one
reason to stop decided once, helper tasks ended together, and the publisher of its
numbered events, whose failure stops it."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
from collections.abc import Coroutine
from typing import Any

from runner.client import TaskCalls
from runner.errors import AttemptLost
from runner.publisher import EventPublisher


class Stop(enum.Enum):
    """Why an attempt is stopped from outside its own work."""

    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"
    LOST = "attempt lost"
    UNAVAILABLE = "daemon unavailable"


class Attempt:
    def __init__(self, client: TaskCalls, task_id: str, attempt: int) -> None:
        self._stop: asyncio.Future[Stop] = asyncio.get_running_loop().create_future()
        self._helpers: set[asyncio.Task[None]] = set()
        self._delivery_error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._publisher = EventPublisher(
            functools.partial(client.publish, task_id, attempt),
            on_cancel=lambda: self._decide(Stop.CANCELLED),
            on_failure=self._delivery_failed,
        )

    def _spawn_helper(self, work: Coroutine[Any, Any, None]) -> None:
        helper = asyncio.create_task(work)
        self._helpers.add(helper)
        helper.add_done_callback(self._helpers.discard)

    def _decide(self, stop: Stop) -> None:
        if not self._stop.done():
            self._stop.set_result(stop)

    def _delivery_failed(self, exc: BaseException) -> None:
        self._delivery_error = exc
        self._decide(Stop.LOST if isinstance(exc, AttemptLost) else Stop.UNAVAILABLE)

    async def _end_helpers(self) -> None:
        """Ends the timer and every helper, then the publisher."""
        if self._timer is not None:
            self._timer.cancel()
        helpers = list(self._helpers)
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        await self._publisher.aclose()
