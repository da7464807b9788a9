"""The heartbeat a runner keeps up while it runs a task; it also brings cancels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from grpc import aio

from runner.backoff import delays
from runner.client import TaskCalls, describe
from runner.errors import AttemptLost, Transient

log = logging.getLogger(__name__)


async def keep_alive(
    client: TaskCalls,
    task_id: str,
    attempt: int,
    wait: float,
    *,
    on_cancel: Callable[[], None],
    on_lost: Callable[[], None],
    on_drain: Callable[[], None],
) -> None:
    """Heartbeats about once every `wait` seconds until cancelled or the attempt is lost.

    The daemon holds each call up to `wait` and answers early on a cancel, so a
    cancel is heard at once. Heartbeats go on after a cancel, while the task is
    being killed and its last events sent.
    """
    loop = asyncio.get_running_loop()
    retry = delays()
    while True:
        started = loop.time()
        try:
            reply = await client.heartbeat(task_id, attempt, wait)
        except AttemptLost:
            on_lost()
            return
        except Transient as exc:
            log.warning("heartbeat for %s failed (%s); retrying", task_id, exc)
            await asyncio.sleep(next(retry))
            continue
        except aio.AioRpcError as exc:
            log.warning("heartbeat for %s refused (%s); retrying", task_id, describe(exc))
            await asyncio.sleep(wait)
            continue
        retry = delays()
        if reply.drain_requested:
            on_drain()
        if reply.cancel_requested:
            on_cancel()
        # An answer sooner than `wait` (a cancel, or a daemon that does not hold
        # the call) must not turn this into a busy loop.
        rest = wait - (loop.time() - started)
        if rest > 0:
            await asyncio.sleep(rest)
