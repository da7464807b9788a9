"""Event fan-out with a real daemon and real runners: many WatchTask watchers on one
task, a watcher that stops reading, reconnect storms, and EventService.Subscribe's
filters, cursors and bookmarks.

No assertion depends on timing: every wait is on a condition (a watcher's progress,
a flag, a stored state), bounded only to fail rather than hang. The producing command
waits for `go-N` files the test creates, so each step starts only when the watchers
are where the test wants them. The bookmark test alone waits out the daemon's quiet
period (about 5 s)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from daemon.api.event_service import QUIET_SECONDS
from protos import (
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
)
from tests.support import Client, Daemon, output_of, wait_until, write_config

S = task_pb2
Event = event_pb2.Event


# -- a gated producer --------------------------------------------------------------------


def producer(lines: int, phases: int = 1, pad: int = 0, pace: float = 0) -> str:
    """A script printing `lines` numbered lines, each flushed on its own, in `phases`
    equal parts; part N starts once a file `go-N` exists in its working directory.
    With `pace`, it sleeps that long after each line, so lines become separate events."""
    return (
        "import os, sys, time\n"
        f"LINES, PHASES, PAD, PACE = {lines}, {phases}, {pad}, {pace}\n"
        "per = LINES // PHASES\n"
        "for phase in range(PHASES):\n"
        "    while not os.path.exists(f'go-{phase}'):\n"
        "        time.sleep(0.005)\n"
        "    for i in range(phase * per, (phase + 1) * per):\n"
        "        sys.stdout.write(f'{i:06d} ' + 'x' * PAD + '\\n'); sys.stdout.flush()\n"
        "        if PACE:\n"
        "            time.sleep(PACE)\n"
    )


# Sleeps after each line: about 0.3 ms each, so most lines arrive as their own event.
PACE = 0.0002


def produced(lines: int, pad: int = 0) -> bytes:
    return "".join(f"{i:06d} " + "x" * pad + "\n" for i in range(lines)).encode()


async def gated_task(
    client: Client, workspace: Path, lines: int, phases: int = 1, pad: int = 0, pace: float = 0
) -> task_pb2.Task:
    return await client.create(
        [sys.executable, "-c", producer(lines, phases, pad, pace)],
        workspace=task_pb2.Workspace(path=str(workspace)),
    )


def go(workspace: Path, phase: int = 0) -> None:
    (workspace / f"go-{phase}").touch()


def kind(event: Event) -> str:
    return event.WhichOneof("payload") or ""


def assert_complete(events: Sequence[Event], expected_output: bytes) -> None:
    """Every event once, seqs 1..n in order, ending with `finished`, the whole output."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert kind(events[-1]) == "finished"
    assert kinds_once(events, "queued", "claimed", "started", "finished")
    assert events[-1].finished.state == S.TASK_STATE_SUCCEEDED
    assert output_of(list(events)) == expected_output


def kinds_once(events: Sequence[Event], *names: str) -> bool:
    found = [kind(e) for e in events]
    return all(found.count(name) == 1 for name in names)


def wire(events: Sequence[Event]) -> list[bytes]:
    return [e.SerializeToString(deterministic=True) for e in events]


def watch_request(task_id: str, after_seq: int = 0) -> task_service_pb2.WatchTaskRequest:
    return task_service_pb2.WatchTaskRequest(task_id=task_id, after_seq=after_seq)


async def own_client(daemon: Daemon) -> Client:
    """A client on its own connection, as each IDE window would have."""
    return await daemon.connect()


async def small_window_client(daemon: Daemon, token: str) -> Client:
    """A client whose connection accepts 64 KB per stream until the app reads, no more.
    By default gRPC grows its windows (BDP probing) and buffers megabytes for a reader
    that stopped, so a daemon that waited on its slowest watcher would go unnoticed."""
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65536)]
    channel = grpc.aio.insecure_channel(f"unix://{daemon.paths.socket}", options=options)
    daemon.channels.append(channel)
    return Client(channel, token)


# -- many watchers -----------------------------------------------------------------------


async def test_64_concurrent_watchers_each_get_every_event_exactly_once(
    daemon: Daemon, tmp_path: Path
) -> None:
    watchers, lines = 64, 2000
    client = await daemon.start()
    task = await gated_task(client, tmp_path, lines, pace=PACE)
    clients = [await own_client(daemon) for _ in range(watchers // 4)]
    connected = [asyncio.Event() for _ in range(watchers)]

    async def watcher(i: int) -> list[Event]:
        # Four streams on each connection: multiplexed and separate connections both.
        c = clients[i % len(clients)]
        seen: list[Event] = []
        async for batch in c.tasks.WatchTask(watch_request(task.id), metadata=c.md):
            seen.extend(batch.events)
            connected[i].set()
        return seen

    runs = [asyncio.create_task(watcher(i)) for i in range(watchers)]
    # All 64 are streaming live before the first line is printed.
    await wait_until(lambda: all(e.is_set() for e in connected), 20, "every watcher's first batch")
    assert not any(r.done() for r in runs)
    go(tmp_path)
    async with asyncio.timeout(60):
        results = await asyncio.gather(*runs)

    stored = await client.get(task.id)
    assert stored.state == S.TASK_STATE_SUCCEEDED
    reference = results[0]
    assert len(reference) == stored.last_seq
    assert_complete(reference, produced(lines))
    for seen in results[1:]:
        assert_complete(seen, produced(lines))
        assert wire(seen) == wire(reference)


# -- a slow watcher ----------------------------------------------------------------------


async def test_stalled_watcher_slows_neither_the_runner_nor_the_other_watchers(
    daemon: Daemon, home: Path, tmp_path: Path
) -> None:
    # One runner, so "the runner goes on" means this very runner takes the next task.
    write_config(
        home, '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
    )
    # About 3 MB of output, and the stalled watcher's connection takes 64 KB at most:
    # the daemon's writes to it really block while the others go on.
    lines, pad, fast = 3000, 1000, 8
    client = await daemon.start()
    task = await gated_task(client, tmp_path, lines, pad=pad)
    expected = produced(lines, pad)
    completed: list[str] = []
    connected: dict[str, asyncio.Event] = {}
    release = asyncio.Event()
    slow_seen: list[Event] = []

    async def fast_watcher(name: str) -> list[Event]:
        c = await own_client(daemon)
        seen: list[Event] = []
        async for batch in c.tasks.WatchTask(watch_request(task.id), metadata=c.md):
            seen.extend(batch.events)
            connected[name].set()
        completed.append(name)
        return seen

    async def slow_watcher() -> None:
        c = await small_window_client(daemon, client.token)
        async for batch in c.tasks.WatchTask(watch_request(task.id), metadata=c.md):
            slow_seen.extend(batch.events)
            connected["slow"].set()
            # Stops reading after its first batch until told, then reads at a crawl.
            await release.wait()
            await asyncio.sleep(0.01)
        completed.append("slow")

    names = [f"fast-{i}" for i in range(fast)]
    for name in [*names, "slow"]:
        connected[name] = asyncio.Event()
    slow = asyncio.create_task(slow_watcher())
    fast_runs = [asyncio.create_task(fast_watcher(name)) for name in names]
    await wait_until(lambda: all(e.is_set() for e in connected.values()), 20, "all connected")
    go(tmp_path)

    async with asyncio.timeout(60):
        fast_results = await asyncio.gather(*fast_runs)
    # The runner finished the task and, being free, runs another to its end.
    assert (await client.get(task.id)).state == S.TASK_STATE_SUCCEEDED
    after = await client.create(["echo", "next"])
    async with asyncio.timeout(30):
        next_events = await client.events(after.id)
    completed.append("next task")
    assert output_of(next_events) == b"next\n"
    # All that happened while the slow watcher sat on its first batch.
    assert not slow.done() and "slow" not in completed
    assert kind(slow_seen[-1]) != "finished" and len(slow_seen) < len(fast_results[0])
    for seen in fast_results:
        assert_complete(seen, expected)

    release.set()
    async with asyncio.timeout(60):
        await slow
    assert completed[-1] == "slow"
    assert completed[:-2] and sorted(completed[:-2]) == sorted(names)
    assert completed[-2] == "next task"
    assert_complete(slow_seen, expected)
    assert wire(slow_seen) == wire(fast_results[0])


# -- reconnect storm ---------------------------------------------------------------------


@dataclass
class Resumer:
    """A watcher that drops its stream at random points (mid-batch too) and resumes
    with after_seq = the last seq it kept, sometimes on a brand new connection."""

    name: int
    cuts: list[int]  # line counts after which it disconnects, ascending
    rng: random.Random
    seen: list[Event] = field(default_factory=list)
    lines: int = 0
    reconnects: int = 0
    done: bool = False

    async def run(self, daemon: Daemon, shared: Client, task_id: str) -> None:
        own: Client | None = None
        while not self.done:
            last = self.seen[-1].seq if self.seen else 0
            if self.rng.random() < 0.5:
                own = own or await own_client(daemon)
                client = own
            else:
                client = shared
            call = client.tasks.WatchTask(watch_request(task_id, last), metadata=client.md)
            dropped = await self._read(call)
            if dropped:
                self.reconnects += 1
                if own is not None and self.rng.random() < 0.5:
                    # Drop the whole connection, not just the stream.
                    await own.channel.close(None)
                    daemon.channels.remove(own.channel)
                    own = None
                await asyncio.sleep(self.rng.random() * 0.02)

    async def _read(
        self,
        call: grpc.aio.UnaryStreamCall[
            task_service_pb2.WatchTaskRequest, task_service_pb2.WatchTaskResponse
        ],
    ) -> bool:
        """Reads until the stream ends (False) or a cut is reached (True, cancelled)."""
        async for batch in call:
            for event in batch.events:
                self.seen.append(event)
                if kind(event) == "finished":
                    self.done = True
                    return False
                if kind(event) == "log":
                    self.lines += event.log.data.count(b"\n")
                if self.cuts and self.lines >= self.cuts[0]:
                    while self.cuts and self.lines >= self.cuts[0]:
                        self.cuts.pop(0)
                    # The rest of this batch is thrown away: the resume sends it again.
                    call.cancel()
                    return True
        return False


async def test_reconnect_storm_ends_with_every_stream_complete(
    daemon: Daemon, tmp_path: Path
) -> None:
    watchers, lines, phases = 32, 1200, 4
    per = lines // phases
    client = await daemon.start()
    task = await gated_task(client, tmp_path, lines, phases=phases, pace=PACE)
    resumers = []
    for i in range(watchers):
        rng = random.Random(7000 + i)
        # Two random cuts inside each phase's lines: every phase sees each watcher go.
        cuts = sorted(
            rng.randint(p * per + 1, (p + 1) * per) for p in range(phases) for _ in range(2)
        )
        resumers.append(Resumer(i, cuts, rng))
    runs = [asyncio.create_task(r.run(daemon, client, task.id)) for r in resumers]

    def through(line: int) -> Callable[[], bool]:
        return lambda: all(r.lines >= line or r.done for r in resumers)

    async with asyncio.timeout(60):
        for phase in range(phases):
            go(tmp_path, phase)
            # The next phase starts when every watcher is through this one (so each
            # has dropped and resumed at least once while the task was running).
            await wait_until(through((phase + 1) * per), 30, f"every watcher through phase {phase}")
            for run in runs:
                if run.done():
                    run.result()
        await asyncio.gather(*runs)

    stored = await client.get(task.id)
    reference = resumers[0].seen
    assert len(reference) == stored.last_seq
    for r in resumers:
        assert_complete(r.seen, produced(lines))
        assert wire(r.seen) == wire(reference)
        assert r.reconnects >= phases, (r.name, r.reconnects)


# -- EventService.Subscribe --------------------------------------------------------------


async def collect(
    client: Client,
    request: event_service_pb2.SubscribeRequest,
    until: Callable[[list[Event]], bool],
    timeout: float = 20,
) -> list[Event]:
    """Non-bookmark events of a Subscribe stream until `until(events)` holds."""
    stub = event_service_pb2_grpc.EventServiceStub(client.channel)
    call = stub.Subscribe(request, metadata=client.md)
    seen: list[Event] = []
    try:
        async with asyncio.timeout(timeout):
            async for response in call:
                seen.extend(e for e in response.events if kind(e) != "bookmark")
                if until(seen):
                    return seen
    except TimeoutError:
        raise AssertionError(f"Subscribe({request}) stopped at {len(seen)} events") from None
    finally:
        call.cancel()
    raise AssertionError("Subscribe ended")


async def exactly(client: Client, expected: Sequence[Event], **request: object) -> list[Event]:
    """Subscribes from the start with `request`'s filters; the stream must be `expected`."""
    assert expected, "an empty expectation proves nothing"
    message = event_service_pb2.SubscribeRequest(**request)  # type: ignore[arg-type]
    if not message.after_cursor:
        message.from_start = True
    got = await collect(client, message, lambda seen: len(seen) >= len(expected))
    assert wire(got) == wire(expected), f"{request}: {[kind(e) for e in got]}"
    return got


def finished_of(task_id: str) -> Callable[[list[Event]], bool]:
    return lambda seen: any(e.task_id == task_id and kind(e) == "finished" for e in seen)


async def test_subscribe_filters_cursors_and_from_start(daemon: Daemon, tmp_path: Path) -> None:
    client = await daemon.start()
    first = await client.create(["echo", "first"])
    first_events = await client.events(first.id)

    # A live subscription (no cursor, no from_start) replays nothing of the past.
    live_seen: list[Event] = []

    async def follow() -> None:
        stub = event_service_pb2_grpc.EventServiceStub(client.channel)
        request = event_service_pb2.SubscribeRequest()
        async for response in stub.Subscribe(request, metadata=client.md):
            live_seen.extend(e for e in response.events if kind(e) != "bookmark")

    live = asyncio.create_task(follow())
    pings = []
    # Its start is not observable, so small tasks run until it has seen something.
    while not live_seen:
        pings.append((await client.create(["true"])).id)
        await client.events(pings[-1])
        await _wait_briefly(lambda: bool(live_seen))
    main = await gated_task(client, tmp_path, 100, pace=PACE)
    go(tmp_path)
    main_events = await client.events(main.id)
    await wait_until(lambda: finished_of(main.id)(live_seen), 20, "the live stream to see main")
    live.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await live

    # from_start: every event kept, in cursor order, the runners' own included.
    truth = await collect(
        client, event_service_pb2.SubscribeRequest(from_start=True), finished_of(main.id)
    )
    cursors = [e.cursor for e in truth]
    assert cursors == sorted(set(cursors)) and cursors[0] >= 1
    assert {"runner_state_changed", "queued", "log", "finished"} <= {kind(e) for e in truth}
    assert wire([e for e in truth if e.task_id == first.id]) == wire(first_events)
    assert wire([e for e in truth if e.task_id == main.id]) == wire(main_events)

    # The live stream began after `first` ended and missed nothing from its start on.
    assert live_seen[0].cursor > first_events[-1].cursor
    assert all(e.task_id != first.id for e in live_seen)
    live_part = [e for e in live_seen if e.cursor <= cursors[-1]]
    start = cursors.index(live_part[0].cursor)
    assert wire(live_part) == wire(truth[start:])

    # By task ids.
    await exactly(client, main_events, task_ids=[main.id])
    both = [e for e in truth if e.task_id in (first.id, main.id)]
    await exactly(client, both, task_ids=[first.id, main.id])
    # By event types.
    ends = [e for e in truth if kind(e) == "finished"]
    assert len(ends) == 2 + len(pings)
    await exactly(client, ends, event_types=["finished"])
    logs_and_ends = [e for e in truth if kind(e) in ("log", "finished")]
    await exactly(client, logs_and_ends, event_types=["log", "finished"])
    # By runner ids: every event produced by or about that runner, and only those.
    runner_ids = {e.runner_id for e in truth if kind(e) == "runner_state_changed"}
    assert len(runner_ids) == 2
    for runner_id in sorted(runner_ids):
        await exactly(
            client, [e for e in truth if e.runner_id == runner_id], runner_ids=[runner_id]
        )
    # Combined (AND): main's log lines from the runner that ran it.
    main_runner = next(e.claimed.runner_id for e in main_events if kind(e) == "claimed")
    combined = await exactly(
        client,
        [e for e in main_events if kind(e) == "log"],
        task_ids=[main.id],
        event_types=["log"],
        runner_ids=[main_runner],
    )
    assert output_of(combined) == produced(100)

    # after_cursor: exactly the events after it, filtered or not.
    middle = next(e.cursor for e in main_events if kind(e) == "started")
    await exactly(client, [e for e in truth if e.cursor > middle], after_cursor=middle)
    await exactly(
        client,
        [e for e in main_events if e.cursor > middle],
        after_cursor=middle,
        task_ids=[main.id],
    )

    # Resuming from each response's cursor, one response at a time, loses and repeats nothing.
    stub = event_service_pb2_grpc.EventServiceStub(client.channel)
    resumed: list[Event] = []
    cursor, resumes = 0, 0
    while not finished_of(main.id)(resumed):
        request = event_service_pb2.SubscribeRequest(
            task_ids=[main.id], after_cursor=cursor, from_start=cursor == 0
        )
        call = stub.Subscribe(request, metadata=client.md)
        async with asyncio.timeout(20):
            response = await call.read()
        call.cancel()
        assert isinstance(response, event_service_pb2.SubscribeResponse)
        # Only the first event each time, then drop: the cursor of the last kept.
        keep = [e for e in response.events if kind(e) != "bookmark"][:1]
        resumed.extend(keep)
        cursor = keep[-1].cursor if keep else response.cursor
        resumes += 1
    assert wire(resumed) == wire(main_events)
    assert resumes > 2


async def _wait_briefly(predicate: Callable[[], bool]) -> None:
    """Up to half a second for `predicate`; no failure when it does not hold."""
    for _ in range(25):
        if predicate():
            return
        await asyncio.sleep(0.02)


async def test_subscribe_unknown_event_type_is_invalid_argument(daemon: Daemon) -> None:
    client = await daemon.start()
    stub = event_service_pb2_grpc.EventServiceStub(client.channel)
    request = event_service_pb2.SubscribeRequest(event_types=["finished", "no_such_kind"])
    call = stub.Subscribe(request, metadata=client.md)
    try:
        async with asyncio.timeout(10):
            await call.read()
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "event_types" in (e.details() or "") and "no_such_kind" in (e.details() or "")
    else:
        raise AssertionError("an unknown event type was accepted")
    # The daemon keeps serving.
    assert (await client.status()).pid > 0


# Waits out the daemon's quiet period (QUIET_SECONDS, 5 s): the slowest test here.
async def test_quiet_subscription_gets_bookmarks_with_an_advancing_cursor(
    daemon: Daemon,
) -> None:
    client = await daemon.start()
    before = await client.events((await client.create(["echo", "before"])).id)
    stub = event_service_pb2_grpc.EventServiceStub(client.channel)
    # A filter nothing matches: a task id that does not exist, with a type and a runner.
    request = event_service_pb2.SubscribeRequest(
        task_ids=["t-none"], event_types=["log"], runner_ids=["runner-0"]
    )
    call = stub.Subscribe(request, metadata=client.md)
    # Events the subscription reads past, whether it started before or after them.
    during = await client.events((await client.create(["echo", "during"])).id)
    try:
        async with asyncio.timeout(QUIET_SECONDS + 2.5):
            response = await call.read()
    finally:
        call.cancel()
    assert isinstance(response, event_service_pb2.SubscribeResponse)
    assert [kind(e) for e in response.events] == ["bookmark"]
    bookmark = response.events[0]
    assert bookmark.cursor == response.cursor
    assert not bookmark.task_id and not bookmark.seq
    assert response.cursor >= during[-1].cursor > before[-1].cursor
