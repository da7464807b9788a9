"""Agent tasks against the fake Messages API (tests/fake_anthropic.py, real HTTP and SSE,
the real anthropic SDK in a real runner): what the runner adds to each turn, and how
late streamed text reaches a watcher.

Runner overhead per turn. An autonomous task whose script is TURNS replies of one
cheap tool call (`glob` for "*.none" in an empty workspace), then a final text reply;
the fake answers with no delay. The span measured runs from the moment the fake has
read the first request (its own clock) to the `finished` event (the daemon's clock,
stamped when the daemon stored it; both are wall clocks of this machine). From it we
take away the time the fake spent answering each of the TURNS + 1 requests (from the
request read to the connection closed after the last byte), and divide by TURNS.
What is left, and counted, is everything between one answer's end and the next
request's arrival: the SDK parsing the stream and building the next request (with a
new localhost connection each time, as the fake speaks HTTP/1.0), the policy judging
the call, the tool running, the events (assistant message, tool call, policy
decision, tool result, usage, text) published to the daemon and stored by it, the
limits check; and once, after the last answer, the final reply's parsing, the flush of
the events and the outcome reported to the daemon. What is left out: the model (the
fake's answering time), the task's queueing and claim, the runner's start of the
conversation before its first request.

Text delta to a watcher. A reply streams DELTAS small text deltas, DELTA_DELAY apart;
the fake writes its wall-clock send time into each delta as it sends it, and a watcher
(TaskService.WatchTask) takes the time each batch arrives. Latency = arrival - send:
the SDK's parsing, the runner's publishing, the daemon's storing and fan-out, gRPC to
the watcher.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable

import grpc

from bench.common import BenchDaemon, median, percentile, report, running_daemon
from protos import event_pb2, task_pb2, task_service_pb2, task_service_pb2_grpc
from tests.fake_anthropic import (
    FakeAnthropic,
    fake_anthropic,
    reply,
    stamped_text,
    tool_use,
)

RUNS = 3
TURNS = 40
DELTAS = 300
DELTA_DELAY = 0.003
TASK_TIMEOUT = 30.0
KEY = "sk-ant-test-bench-" + uuid.uuid4().hex
STAMP = re.compile(r"<(\d+\.\d+)>")


class _Bench:
    def __init__(self, daemon: BenchDaemon, channel: grpc.aio.Channel, api: FakeAnthropic) -> None:
        self.stub = task_service_pb2_grpc.TaskServiceStub(channel)
        self.md = daemon.metadata()
        self.api = api
        self.workspace = daemon.home / "workspace"
        self.workspace.mkdir(exist_ok=True)

    async def run_task(
        self,
        on_batch: Callable[[float, task_service_pb2.WatchTaskResponse], None] | None = None,
    ) -> list[event_pb2.Event]:
        """Runs one autonomous agent task to its end; every event, in order."""
        spec = task_pb2.TaskSpec(
            agent=task_pb2.AgentSpec(
                prompt="look around",
                policy_level=task_pb2.POLICY_LEVEL_AUTONOMOUS,
                limits=task_pb2.AgentLimits(max_turns=TURNS + 5),
            ),
            workspace=task_pb2.Workspace(path=str(self.workspace)),
        )
        task = await self.stub.CreateTask(
            task_service_pb2.CreateTaskRequest(spec=spec), metadata=self.md
        )
        events: list[event_pb2.Event] = []

        async def watch() -> None:
            async for batch in self.stub.WatchTask(
                task_service_pb2.WatchTaskRequest(task_id=task.id), metadata=self.md
            ):
                if on_batch is not None:
                    on_batch(time.time(), batch)
                events.extend(batch.events)
                if events and events[-1].WhichOneof("payload") == "finished":
                    return

        await asyncio.wait_for(watch(), TASK_TIMEOUT)
        end = events[-1].finished
        if end.state != task_pb2.TASK_STATE_SUCCEEDED:
            raise RuntimeError(f"agent task {task.id} did not succeed: {end.result.error}")
        return events

    async def overhead(self) -> tuple[float, float]:
        """(runner overhead per turn, fake answer time per request), in ms."""
        start = len(self.api.message_requests)
        self.api.script(
            *[reply(tool_use("glob", {"pattern": "*.none"})) for _ in range(TURNS)],
            reply("nothing here"),
        )
        events = await self.run_task()
        requests = self.api.message_requests[start:]
        if len(requests) != TURNS + 1 or not all(r.finished for r in requests):
            raise RuntimeError(f"expected {TURNS + 1} answered requests, got {len(requests)}")
        finished_at = events[-1].time.ToNanoseconds() / 1e9
        answering = sum(r.answer_seconds for r in requests)
        span = finished_at - requests[0].received
        return (span - answering) / TURNS * 1000, answering / len(requests) * 1000

    async def deltas(self) -> list[float]:
        """The latency of each stamped text delta, send to watcher, in ms."""
        latencies: list[float] = []
        live: list[float] = []

        def on_batch(now: float, batch: task_service_pb2.WatchTaskResponse) -> None:
            if not live:
                live.append(now)
            for event in batch.events:
                if event.WhichOneof("payload") == "text_delta":
                    for sent in STAMP.findall(event.text_delta.text):
                        # A delta sent before the watcher was live is a replay, not a push.
                        if float(sent) >= live[0]:
                            latencies.append((now - float(sent)) * 1000)

        self.api.script(
            # A slow first turn: the watcher is subscribed well before any text streams.
            reply(tool_use("list_dir", {"path": "."}), delay=0.02),
            reply(stamped_text(*["<{now}> " for _ in range(DELTAS)]), delay=DELTA_DELAY),
        )
        await self.run_task(on_batch)
        return latencies


async def _measure() -> tuple[list[tuple[float, float]], list[list[float]]]:
    with fake_anthropic() as api:
        config = f'[secrets]\nrequired = []\n[agent]\nbase_url = "{api.base_url}"\n'
        async with (
            running_daemon(1, config=config, secrets={"ANTHROPIC_API_KEY": KEY}) as daemon,
            daemon.channel() as channel,
        ):
            bench = _Bench(daemon, channel, api)
            # One untimed task first: imports and first connections warm up.
            await bench.overhead()
            overheads = [await bench.overhead() for _ in range(RUNS)]
            deltas = [await bench.deltas() for _ in range(RUNS)]
            return overheads, deltas


def main() -> None:
    overheads, deltas = asyncio.run(_measure())
    report(
        f"agent runner overhead per turn ({TURNS} turns)",
        median([o for o, _ in overheads]),
        "ms",
        None,
        "< 5 ms",
    )
    report("  fake server answer time per request", median([a for _, a in overheads]), "ms")
    report("text delta fake to watcher, p50", median([median(d) for d in deltas]), "ms")
    report(
        "text delta fake to watcher, p99",
        median([percentile(d, 99) for d in deltas]),
        "ms",
        None,
        "< 20 ms",
    )
    timed = min(len(d) for d in deltas)
    print(f"{'  text deltas timed per run, fewest':<44} {timed:>10d} of {DELTAS}", flush=True)


if __name__ == "__main__":
    main()
