"""`python -m daemon`: the daemon in the foreground (what `stigmer local start` launches).

Exit codes: 0 stopped cleanly, 1 could not start (the log says why), 2 another
daemon already runs on the same state."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from daemon import config as configmod
from daemon.errors import DaemonError
from daemon.pidlock import PidLock
from daemon.server import StartupError, serve
from shared import paths as pathsmod
from shared.redact import Redactor
from shared.secretstore import SecretStore, valid_name

log = logging.getLogger("daemon")


# Set by `stigmer local start`: the secrets of its environment follow on stdin as
# one JSON object, so they never sit in the daemon's own environment.
ENV_SECRETS_ON_STDIN = "STIGMER_SECRETS_ON_STDIN"


def _take_environment_secrets(paths: pathsmod.Paths, config: configmod.Config) -> dict[str, str]:
    """The secrets of the environment stigmer was started in, taken out of this
    process's environment (so nothing inherits them by accident) into memory."""
    taken: dict[str, str] = {}
    if os.environ.pop(ENV_SECRETS_ON_STDIN, "") == "1":
        try:
            data = json.loads(sys.stdin.read() or "{}")
        except ValueError:
            data = {}
            log.warning("ignored unreadable secrets on stdin")
        if isinstance(data, dict):
            taken.update(
                {k: v for k, v in data.items() if isinstance(v, str) and v and valid_name(k)}
            )
    names = {
        *config.required_secrets,
        *SecretStore(paths.config_dir / "secrets.toml").known_names(),
    }
    for name in sorted(names):
        value = os.environ.pop(name, "")
        if value:
            taken.setdefault(name, value)
    return taken


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
    env_secrets = _take_environment_secrets(paths, config)
    redactor = Redactor(env_secrets.values())
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor.logging_filter())
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
        asyncio.run(serve(paths, config, env_secrets, redactor))
    except (StartupError, DaemonError) as exc:
        # A daemon that cannot start (a port in use, a full disk) says why, no traceback.
        log.error("%s", exc)
        return 1
    finally:
        lock.release()
    return 0
