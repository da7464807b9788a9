"""The runner process: environment, logging, orphan safety and signals around the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from runner.config import Config, ConfigError
from runner.orphan import die_with_parent, parent_is, watch_parent
from runner.worker import serve

log = logging.getLogger("runner")

# Long enough for a task's group to get its SIGTERM grace and its SIGKILL.
SHUTDOWN_TIMEOUT = 5.0
EXIT_BAD_ENVIRONMENT = 2


def main() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        _setup_logging(os.environ.get("STIGMER_RUNNER_ID") or "runner")
        log.error("%s", exc)
        return EXIT_BAD_ENVIRONMENT
    _setup_logging(config.runner_id)
    die_with_parent()
    # The daemon may have died before prctl took effect: then nobody would
    # ever send the parent-death signal.
    if not parent_is(config.daemon_pid):
        log.error("the daemon (pid %d) is not this runner's parent; exiting", config.daemon_pid)
        return 1
    return asyncio.run(_run(config))


async def _run(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    worker = asyncio.create_task(serve(config))
    orphaned = asyncio.create_task(watch_parent(config.daemon_pid))
    signalled = asyncio.create_task(stopping.wait())
    watched: list[asyncio.Task[Any]] = [worker, orphaned, signalled]
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    orphaned.cancel()
    signalled.cancel()
    if worker.done():
        return worker.result()
    if stopping.is_set():
        log.info("signalled; stopping")
        code = 0
    else:
        log.error("the daemon (pid %d) is gone; stopping", config.daemon_pid)
        code = 1
    # Cancelling the worker kills the running task's process group, without
    # completing the task: the daemon decides its fate when this process exits.
    worker.cancel()
    done, _ = await asyncio.wait([worker], timeout=SHUTDOWN_TIMEOUT)
    if not done:
        log.warning("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_TIMEOUT)
    else:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            worker.result()
    return code


def _setup_logging(runner_id: str) -> None:
    # The id goes into the format itself: "%" in it must not read as a placeholder.
    safe_id = runner_id.replace("%", "%%")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s {safe_id} %(levelname)s %(name)s: %(message)s",
    )
