"""`python -m daemon`: the daemon in the foreground (what `stigmer local start` launches).

Exit codes: 0 stopped cleanly, 1 could not start (the log says why), 2 another
daemon already runs on the same state."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from daemon import config as configmod
from daemon.pidlock import PidLock
from daemon.server import StartupError, serve
from shared import paths as pathsmod

log = logging.getLogger("daemon")


def main() -> int:
    # Everything the daemon creates (socket, token, database, logs) is private.
    os.umask(0o077)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    paths = pathsmod.resolve()
    try:
        config = configmod.load(paths.config_file)
    except configmod.ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return 1
    for folder in (paths.state_dir, paths.runtime_dir):
        pathsmod.ensure_private_dir(folder)
    paths.log_dir.mkdir(exist_ok=True)
    lock = PidLock(paths.pid_file)
    if not lock.acquire():
        holder = lock.holder()
        log.error(
            "another stigmer daemon is already running%s on %s; stop it with `stigmer local stop`",
            f" (pid {holder})" if holder else "",
            paths.state_dir,
        )
        return 2
    try:
        asyncio.run(serve(paths, config))
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    finally:
        lock.release()
    return 0
