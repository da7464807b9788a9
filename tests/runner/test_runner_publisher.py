"""EventPublisher: numbering, batching, one call in flight, resend and dedupe."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest

from protos import event_pb2
from runner.client import Ack
from runner.errors import AttemptLost, DaemonUnavailable, Transient
from runner.publisher import EventPublisher

WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]


def ev(n: int, size: int = 0) -> event_pb2.Event:
    data = str(n).encode().ljust(size, b".")
    return event_pb2.Event(log=event_pb2.Log(stream=event_pb2.LOG_STREAM_STDOUT, data=data))


def number(event: event_pb2.Event) -> int:
    return int(event.log.data.rstrip(b"."))


class FakeDaemon:
    """Stores events by index, dropping ones it has, like the daemon does."""

    def __init__(self) -> None:
        self.stored: dict[int, event_pb2.Event] = {}
        self.calls: list[tuple[int, list[int]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.fail_next: list[Exception] = []
        self.store_at_most: int | None = None
        self.cancel = False

    async def send(self, first: int, events: Sequence[event_pb2.Event]) -> Ack:
        self.calls.append((first, [number(e) for e in events]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.fail_next:
                raise self.fail_next.pop(0)
            keep = len(events) if self.store_at_most is None else self.store_at_most
            for offset, event in enumerate(events[:keep]):
                self.stored.setdefault(first + offset, event)
            return Ack(max(self.stored, default=0), self.cancel)
        finally:
            self.in_flight -= 1

    def numbers(self) -> list[int]:
        return [number(self.stored[i]) for i in sorted(self.stored)]


async def test_numbers_from_one_and_delivers_in_order() -> None:
    daemon = FakeDaemon()
    publisher = EventPublisher(daemon.send)
    publisher.start()
    indices = [publisher.publish(ev(n)) for n in range(50)]
    await publisher.flush()
    await publisher.aclose()
    assert indices == list(range(1, 51))
    assert sorted(daemon.stored) == list(range(1, 51))
    assert daemon.numbers() == list(range(50))
    assert publisher.acked_index == 50


async def test_one_call_in_flight_and_the_rest_batched_into_the_next(wait_until: WaitUntil) -> None:
    daemon = FakeDaemon()
    daemon.gate = asyncio.Event()
    publisher = EventPublisher(daemon.send)
    publisher.start()
    publisher.publish(ev(0))
    await wait_until(lambda: len(daemon.calls) == 1)
    for n in range(1, 6):
        publisher.publish(ev(n))
    await asyncio.sleep(0.05)
    assert len(daemon.calls) == 1, "a second call started while one was in flight"
    daemon.gate.set()
    await publisher.flush()
    await publisher.aclose()
    assert daemon.calls == [(1, [0]), (2, [1, 2, 3, 4, 5])]
    assert daemon.max_in_flight == 1


async def test_batches_are_capped_by_count_and_bytes(wait_until: WaitUntil) -> None:
    daemon = FakeDaemon()
    daemon.gate = asyncio.Event()
    publisher = EventPublisher(daemon.send, max_batch_events=100, max_batch_bytes=10_000)
    publisher.start()
    publisher.publish(ev(0))
    await wait_until(lambda: len(daemon.calls) == 1)
    for n in range(1, 251):
        publisher.publish(ev(n))
    for n in range(251, 256):
        publisher.publish(ev(n, size=4000))
    daemon.gate.set()
    await publisher.flush()
    await publisher.aclose()
    sizes = [len(numbers) for _, numbers in daemon.calls]
    # 100 by count; then the last 50 small ones fit with two 4 kB ones under 10 kB.
    assert sizes == [1, 100, 100, 52, 2, 1]
    assert daemon.numbers() == list(range(256))


async def test_resends_the_same_batch_after_a_transient_failure() -> None:
    daemon = FakeDaemon()
    daemon.fail_next = [Transient("UNAVAILABLE"), Transient("DEADLINE_EXCEEDED")]
    publisher = EventPublisher(daemon.send, retry_first=0.001)
    publisher.start()
    for n in range(3):
        publisher.publish(ev(n))
    await publisher.flush()
    await publisher.aclose()
    assert daemon.calls[0] == daemon.calls[1] == daemon.calls[2] == (1, [0, 1, 2])
    assert daemon.numbers() == [0, 1, 2]


async def test_continues_after_what_the_daemon_acknowledged(wait_until: WaitUntil) -> None:
    daemon = FakeDaemon()
    daemon.gate = asyncio.Event()
    publisher = EventPublisher(daemon.send, retry_first=0.001)
    publisher.start()
    publisher.publish(ev(0))
    await wait_until(lambda: len(daemon.calls) == 1)
    for n in range(1, 5):
        publisher.publish(ev(n))
    daemon.store_at_most = 2
    daemon.gate.set()
    await wait_until(lambda: len(daemon.calls) >= 3)
    daemon.store_at_most = None
    await publisher.flush()
    await publisher.aclose()
    # Call 2 stored indices 2-3 of 2-5; call 3 starts at 4, not 2.
    assert daemon.calls[:3] == [(1, [0]), (2, [1, 2, 3, 4]), (4, [3, 4])]
    assert daemon.numbers() == [0, 1, 2, 3, 4]


async def test_a_lost_attempt_ends_delivery() -> None:
    daemon = FakeDaemon()
    daemon.fail_next = [AttemptLost("requeued")]
    failures: list[BaseException] = []
    publisher = EventPublisher(daemon.send, on_failure=failures.append)
    publisher.start()
    publisher.publish(ev(0))
    with pytest.raises(AttemptLost):
        await publisher.flush()
    publisher.publish(ev(1))
    with pytest.raises(AttemptLost):
        await publisher.flush()
    await publisher.aclose()
    assert len(failures) == 1
    assert len(daemon.calls) == 1


async def test_gives_up_when_the_daemon_stays_unavailable() -> None:
    daemon = FakeDaemon()
    daemon.fail_next = [Transient("UNAVAILABLE")] * 1000
    publisher = EventPublisher(daemon.send, give_up_after=0.1, retry_first=0.01)
    publisher.start()
    publisher.publish(ev(0))
    with pytest.raises(DaemonUnavailable):
        await asyncio.wait_for(publisher.flush(), 5)
    await publisher.aclose()


async def test_reports_a_cancel_request() -> None:
    daemon = FakeDaemon()
    daemon.cancel = True
    cancels: list[bool] = []
    publisher = EventPublisher(daemon.send, on_cancel=lambda: cancels.append(True))
    publisher.start()
    publisher.publish(ev(0))
    await publisher.flush()
    await publisher.aclose()
    assert cancels == [True]


async def test_backlog_limit_gives_backpressure() -> None:
    daemon = FakeDaemon()
    daemon.gate = asyncio.Event()
    publisher = EventPublisher(daemon.send, max_pending_events=10)
    publisher.start()
    for n in range(10):
        publisher.publish(ev(n))
    assert not publisher.has_room
    waiter = asyncio.create_task(publisher.wait_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    daemon.gate.set()
    await asyncio.wait_for(waiter, 5)
    assert publisher.has_room
    await publisher.flush()
    await publisher.aclose()
    assert daemon.numbers() == list(range(10))
