"""Numbered, batched, acknowledged delivery of one task attempt's events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from protos import event_pb2
from runner.backoff import delays
from runner.client import Ack
from runner.errors import DaemonUnavailable, Transient

log = logging.getLogger(__name__)

# (first_index, events) -> what the daemon has stored. Raises Transient when the
# batch may not have been stored; anything else ends delivery.
Sender = Callable[[int, Sequence[event_pb2.Event]], Awaitable[Ack]]


class EventPublisher:
    """Numbers events from 1 and sends them in order, with one call in flight.

    Events published while a call is in flight go into the next call, so the
    batch size follows the daemon's pace. Nothing is dropped: an unanswered batch
    is sent again from the first index the daemon has not acknowledged (it drops
    the indices it already stored). When too much is waiting, `has_room` turns
    false so the producer can stop reading until `wait_room()` returns.
    """

    def __init__(
        self,
        send: Sender,
        *,
        on_cancel: Callable[[], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        max_batch_events: int = 1000,
        max_batch_bytes: int = 1 << 20,
        max_pending_events: int = 20_000,
        linger: float = 0.0,
        give_up_after: float = 30.0,
        retry_first: float = 0.05,
    ) -> None:
        self._send = send
        self._on_cancel = on_cancel
        self._on_failure = on_failure
        self._max_batch_events = max_batch_events
        self._max_batch_bytes = max_batch_bytes
        self._high_water = max_pending_events
        self._low_water = max_pending_events // 2
        self._linger = linger
        self._give_up_after = give_up_after
        self._retry_first = retry_first
        # Events not yet acknowledged, with their serialized sizes; the first has
        # index _acked + 1.
        self._pending: deque[tuple[event_pb2.Event, int]] = deque()
        self._acked = 0
        self._next_index = 1
        self._failure: BaseException | None = None
        self._work = asyncio.Event()
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self._room = asyncio.Event()
        self._room.set()
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def acked_index(self) -> int:
        return self._acked

    @property
    def has_room(self) -> bool:
        return self._room.is_set()

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._deliver())

    def publish(self, event: event_pb2.Event) -> int:
        """Queues `event` and returns its index. Never blocks."""
        index = self._next_index
        self._next_index += 1
        if self._failure is not None:
            # Nobody will take it; keeping it would make flush() wait forever.
            return index
        self._pending.append((event, event.ByteSize()))
        self._all_acked.clear()
        if len(self._pending) >= self._high_water:
            self._room.clear()
        self._work.set()
        return index

    async def wait_room(self) -> None:
        """Returns once the backlog is down to half its limit (or delivery failed)."""
        await self._room.wait()

    async def flush(self) -> None:
        """Waits until every published event is acknowledged.

        Raises what ended delivery: AttemptLost, DaemonUnavailable, or the
        sender's own error.
        """
        await self._all_acked.wait()
        if self._failure is not None:
            raise self._failure

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def _deliver(self) -> None:
        retry = delays(self._retry_first)
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._work.clear()
                await self._work.wait()
                continue
            if self._linger > 0 and len(self._pending) < self._max_batch_events:
                await asyncio.sleep(self._linger)
            first = self._acked + 1
            batch = self._batch()
            try:
                ack = await self._send(first, batch)
            except Transient as exc:
                now = loop.time()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self._give_up_after:
                    self._fail(DaemonUnavailable(f"events not delivered: {exc}"))
                    return
                await asyncio.sleep(next(retry))
                continue
            except Exception as exc:
                self._fail(exc)
                return
            failing_since = None
            if ack.cancel_requested and self._on_cancel is not None:
                self._on_cancel()
            if not self._acknowledge(ack.acked_index):
                # The daemon stored nothing new: do not resend in a tight loop.
                await asyncio.sleep(next(retry))
                continue
            retry = delays(self._retry_first)

    def _batch(self) -> list[event_pb2.Event]:
        batch: list[event_pb2.Event] = []
        size = 0
        for event, event_size in itertools.islice(self._pending, self._max_batch_events):
            if batch and size + event_size > self._max_batch_bytes:
                break
            batch.append(event)
            size += event_size
        return batch

    def _acknowledge(self, acked_index: int) -> bool:
        """Forgets what the daemon has stored; False when that is nothing new."""
        # An index past what was published would be a daemon bug; never trust it
        # to skip events nobody sent.
        acked = min(acked_index, self._next_index - 1)
        if acked <= self._acked:
            return False
        for _ in range(acked - self._acked):
            self._pending.popleft()
        self._acked = acked
        if len(self._pending) <= self._low_water:
            self._room.set()
        if not self._pending:
            self._all_acked.set()
        return True

    def _fail(self, exc: BaseException) -> None:
        log.debug("event delivery ended: %s", exc)
        self._failure = exc
        # Wake every waiter: flush() raises, producers stop waiting for room.
        self._all_acked.set()
        self._room.set()
        if self._on_failure is not None:
            self._on_failure(exc)
