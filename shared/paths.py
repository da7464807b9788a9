"""Where stigmer-local keeps its files (XDG, or everything under STIGMER_HOME)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    state_dir: Path
    runtime_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.state_dir / "stigmer.db"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "token"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "daemon.log"

    @property
    def workspaces_dir(self) -> Path:
        return self.state_dir / "workspaces"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "stigmer.sock"

    @property
    def pid_file(self) -> Path:
        return self.runtime_dir / "stigmer.pid"


def _xdg(name: str, default: Path) -> Path:
    value = os.environ.get(name, "")
    # XDG says relative values are invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else default


def resolve(env: dict[str, str] | None = None) -> Paths:
    """Works out the paths from the environment, without creating anything."""
    environ = os.environ if env is None else env
    home_override = environ.get("STIGMER_HOME", "")
    if home_override:
        root = Path(home_override).absolute()
        return Paths(root / "config", root / "state", root / "run")
    home = Path.home()
    config = _xdg("XDG_CONFIG_HOME", home / ".config") / "stigmer"
    state = _xdg("XDG_STATE_HOME", home / ".local" / "state") / "stigmer"
    runtime_base = environ.get("XDG_RUNTIME_DIR", "")
    # Never bare /tmp: without a per-user runtime dir the socket lives in a
    # private folder under the state dir.
    runtime = (
        Path(runtime_base) / "stigmer"
        if runtime_base and os.path.isabs(runtime_base)
        else state / "run"
    )
    return Paths(config, state, runtime)


def ensure_private_dir(path: Path) -> None:
    """Creates `path` (and parents) and makes it 0700, as the socket's folder must be."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
