"""What the daemon tells a runner through its environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.auth import ENV_ADDRESS, ENV_DAEMON_PID, ENV_RUNNER_ID, ENV_RUNNER_TOKEN


class ConfigError(Exception):
    """The environment is not one the daemon sets up."""


@dataclass(frozen=True)
class Config:
    address: str
    runner_id: str
    # Kept out of repr so no log or traceback can show it.
    token: str = field(repr=False)
    daemon_pid: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        missing = [
            name
            for name in (ENV_ADDRESS, ENV_RUNNER_ID, ENV_RUNNER_TOKEN, ENV_DAEMON_PID)
            if not env.get(name)
        ]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)}: runners are started by the stigmer daemon"
            )
        try:
            daemon_pid = int(env[ENV_DAEMON_PID])
        except ValueError:
            raise ConfigError(f"{ENV_DAEMON_PID} is not a process id") from None
        return cls(env[ENV_ADDRESS], env[ENV_RUNNER_ID], env[ENV_RUNNER_TOKEN], daemon_pid)
