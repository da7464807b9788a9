"""config.toml: loading and checking; errors name the key, the value and what is allowed."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Config:
    # "" turns TCP off; the unix socket is always on.
    tcp_address: str = "127.0.0.1:50051"
    runners: int = 2
    default_timeout_seconds: float = 3600.0
    max_timeout_seconds: float = 86400.0
    default_max_attempts: int = 1
    # How long ClaimTask and Heartbeat may hold a call.
    max_wait_seconds: float = 5.0
    # How long a runner has to exit after SIGTERM before SIGKILL.
    stop_grace_seconds: float = 10.0


# section -> key -> (Config field, type, check, what is allowed)
_SCHEMA: dict[str, dict[str, tuple[str, type, Any, str]]] = {
    "daemon": {
        "tcp_address": (
            "tcp_address",
            str,
            lambda v: v == "" or _is_host_port(v),
            'a "host:port" such as "127.0.0.1:50051", or "" to turn TCP off',
        ),
    },
    "runners": {
        "count": ("runners", int, lambda v: 0 <= v <= 64, "a whole number from 0 to 64"),
        "stop_grace_seconds": (
            "stop_grace_seconds",
            float,
            lambda v: 0 < v <= 300,
            "seconds, more than 0 and at most 300",
        ),
    },
    "tasks": {
        "default_timeout_seconds": (
            "default_timeout_seconds",
            float,
            lambda v: 0 < v <= 86400,
            "seconds, more than 0 and at most 86400",
        ),
        "max_attempts": (
            "default_max_attempts",
            int,
            lambda v: 1 <= v <= 10,
            "a whole number from 1 to 10",
        ),
    },
}


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)


def _coerce(value: object, kind: type) -> object:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError
    return value


def parse(text: str, source: str = "config.toml") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for section, body in data.items():
        keys = _SCHEMA.get(section)
        if keys is None:
            allowed = ", ".join(f"[{s}]" for s in _SCHEMA)
            raise ConfigError(f"{source}: unknown section [{section}]; allowed: {allowed}")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: {section} must be a table ([{section}])")
        for key, raw in body.items():
            if key not in keys:
                allowed = ", ".join(keys)
                raise ConfigError(f"{source}: unknown key {section}.{key}; allowed: {allowed}")
            attr, kind, check, what = keys[key]
            try:
                value = _coerce(raw, kind)
                ok = bool(check(value))
            except TypeError:
                ok = False
            if not ok:
                raise ConfigError(f"{source}: {section}.{key} = {raw!r} is not allowed; use {what}")
            values[attr] = value
    return Config(**values)  # type: ignore[arg-type]


def load(path: Path) -> Config:
    """The config at `path`, or the defaults when there is no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))
