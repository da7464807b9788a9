"""config.toml: loading and checking; errors name the key, the value and what is allowed."""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from daemon.notify import NotifyConfig


class ConfigError(Exception):
    pass


class AutoRestart(enum.Enum):
    UNEXPECTED = "unexpected"
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class RunnerPolicy:
    """How runners are supervised (supervisord's meanings, plus backoff and hang checks)."""

    autorestart: AutoRestart = AutoRestart.UNEXPECTED
    # Exit codes that count as expected (an exit by signal never does).
    exitcodes: frozenset[int] = frozenset({0})
    start_timeout_seconds: float = 10.0
    heartbeat_timeout_seconds: float = 15.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # Staying RUNNING this long forgets earlier failures.
    stable_seconds: float = 60.0
    # More than max_failures within failure_window_seconds is FATAL.
    max_failures: int = 5
    failure_window_seconds: float = 300.0
    stop_grace_seconds: float = 10.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 3


@dataclass(frozen=True)
class AgentDefaults:
    """What an agent task gets when it does not say."""

    model: str = "claude-sonnet-5-5"
    max_tokens: int = 8192
    # "" keeps the SDK's default (Anthropic's API); an Anthropic-compatible local
    # server (Ollama, llama.cpp) works as well.
    base_url: str = ""
    level: str = "supervised"
    max_turns: int = 50
    max_wall_seconds: float = 1800.0
    max_total_tokens: int = 2_000_000
    max_cost_usd: float = 5.0
    approval_timeout_seconds: float = 120.0
    allow_rules: tuple[str, ...] = ()
    ask_rules: tuple[str, ...] = ()
    deny_rules: tuple[str, ...] = ()
    # Most tokens the skills picked by domain may take together.
    skill_token_budget: int = 8000


@dataclass(frozen=True)
class EventPolicy:
    """[events]: how long events are kept, and how far a watcher may fall behind."""

    # Events of ended tasks older than this are dropped (each task keeps its last,
    # finished event; its state and result live in the tasks table anyway).
    max_age_days: float = 30.0
    # An ended task keeps at most this many of its newest events.
    max_per_task: int = 100_000
    # All events together; the oldest droppable ones go first.
    max_events: int = 1_000_000
    # Compaction runs at start and then this often.
    compact_interval_minutes: float = 10.0
    # A WatchTask or Subscribe stream that falls this many events behind the newest is
    # closed with RESOURCE_EXHAUSTED; it resumes from its cursor without loss.
    max_watcher_lag: int = 50_000


@dataclass(frozen=True)
class Config:
    # "" turns TCP off; the unix socket is always on.
    tcp_address: str = "127.0.0.1:50051"
    # New tasks are refused while the state folder has less free space than this.
    min_free_mb: float = 64.0
    runners: int = 2
    default_timeout_seconds: float = 3600.0
    max_timeout_seconds: float = 86400.0
    default_max_attempts: int = 1
    # How long ClaimTask and Heartbeat may hold a call.
    max_wait_seconds: float = 5.0
    policy: RunnerPolicy = field(default_factory=RunnerPolicy)
    # Keys `stigmer local start` makes sure of (the provider key for agent runs).
    required_secrets: tuple[str, ...] = ("ANTHROPIC_API_KEY",)
    # How long a task waits for a secret it needs before it fails.
    secret_wait_seconds: float = 300.0
    agent: AgentDefaults = field(default_factory=AgentDefaults)
    # Fresh task folders are removed this long after their task ended.
    workspace_retention_hours: float = 24.0
    events: EventPolicy = field(default_factory=EventPolicy)
    notify: NotifyConfig = field(default_factory=NotifyConfig)


@dataclass(frozen=True)
class _Key:
    attr: str
    convert: Callable[[object], object]  # raises ValueError when not allowed
    allowed: str
    # The Config field holding a nested group (policy, agent, events, notify); "" for
    # Config's own fields.
    group: str = ""


def _number(kind: type, lo: float, hi: float, lo_open: bool = False) -> Callable[[object], object]:
    def convert(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        if kind is int and not isinstance(value, int):
            raise ValueError
        # NaN compares false with everything, so the bounds below would let it through;
        # and no bound here is infinite.
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise ValueError
        if value < lo or value > hi or (lo_open and value == lo):
            raise ValueError
        return kind(value)

    return convert


def _seconds(lo: float, hi: float) -> tuple[Callable[[object], object], str]:
    return _number(float, lo, hi, lo_open=True), f"seconds, more than {lo:g} and at most {hi:g}"


def _whole(lo: int, hi: int) -> tuple[Callable[[object], object], str]:
    return _number(int, lo, hi), f"a whole number from {lo} to {hi}"


def _address(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError
    host, sep, port = value.rpartition(":")
    if value and not (sep and host and port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError
    return value


def _autorestart(value: object) -> object:
    return AutoRestart(value)


def _exitcodes(value: object) -> object:
    if not isinstance(value, list) or not value:
        raise ValueError
    for code in value:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise ValueError
    return frozenset(value)


def _secret_names(value: object) -> object:
    from shared.secretstore import valid_name

    if not isinstance(value, list) or not all(isinstance(v, str) and valid_name(v) for v in value):
        raise ValueError
    return tuple(value)


def _strings(value: object) -> object:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError
    return tuple(value)


def _text(value: object) -> object:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError
    return value


def _url(value: object) -> object:
    if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
        raise ValueError
    return value.rstrip("/")


def _level(value: object) -> object:
    if value not in ("student", "intern", "supervised", "autonomous"):
        raise ValueError
    return value


def _plain(kind: type) -> Callable[[object], object]:
    """Type only: NotifyConfig.validate() checks the values and names the fix."""

    def convert(value: object) -> object:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError
        return value

    return convert


def _argv(value: object) -> object:
    if value == "":
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError
    return tuple(value)


def _agent(attr: str, convert: Callable[[object], object], allowed: str) -> _Key:
    return _Key(attr, convert, allowed, "agent")


def _events(attr: str, rule: tuple[Callable[[object], object], str]) -> _Key:
    return _Key(attr, rule[0], rule[1], "events")


def _key(attr: str, rule: tuple[Callable[[object], object], str], policy: bool = False) -> _Key:
    return _Key(attr, rule[0], rule[1], "policy" if policy else "")


_SCHEMA: dict[str, dict[str, _Key]] = {
    "daemon": {
        "min_free_mb": _key(
            "min_free_mb", (_number(float, 0, 1_000_000), "megabytes from 0 to 1000000")
        ),
        "tcp_address": _Key(
            "tcp_address", _address, '"host:port" such as "127.0.0.1:50051", or "" to turn TCP off'
        ),
    },
    "runners": {
        "count": _key("runners", _whole(0, 64)),
        "autorestart": _Key(
            "autorestart", _autorestart, '"unexpected", "always" or "never"', "policy"
        ),
        "exitcodes": _Key(
            "exitcodes", _exitcodes, "a non-empty list of exit codes 0 to 255", "policy"
        ),
        "start_timeout_seconds": _key("start_timeout_seconds", _seconds(0, 600), True),
        "heartbeat_timeout_seconds": _key("heartbeat_timeout_seconds", _seconds(0, 3600), True),
        "backoff_initial_seconds": _key("backoff_initial_seconds", _seconds(0, 600), True),
        "backoff_max_seconds": _key("backoff_max_seconds", _seconds(0, 3600), True),
        "stable_seconds": _key("stable_seconds", _seconds(0, 86400), True),
        "max_failures": _key("max_failures", _whole(1, 1000), True),
        "failure_window_seconds": _key("failure_window_seconds", _seconds(0, 86400), True),
        "stop_grace_seconds": _key("stop_grace_seconds", _seconds(0, 300), True),
        "log_max_bytes": _key("log_max_bytes", _whole(4096, 1 << 34), True),
        "log_backups": _key("log_backups", _whole(0, 100), True),
    },
    "secrets": {
        "required": _Key(
            "required_secrets",
            _secret_names,
            'a list of variable names such as ["ANTHROPIC_API_KEY"]',
        ),
        "wait_seconds": _key("secret_wait_seconds", _seconds(0, 86400)),
    },
    "tasks": {
        "default_timeout_seconds": _key("default_timeout_seconds", _seconds(0, 86400)),
        "max_attempts": _key("default_max_attempts", _whole(1, 10)),
        "workspace_retention_hours": _key("workspace_retention_hours", _seconds(0, 24 * 365)),
    },
    "agent": {
        "model": _agent("model", _text, 'a model name such as "claude-sonnet-5-5"'),
        "max_tokens": _agent("max_tokens", *_whole(1, 128_000)),
        "base_url": _agent(
            "base_url", _url, 'an http(s) URL such as "http://localhost:11434", or ""'
        ),
        "level": _agent("level", _level, '"student", "intern", "supervised" or "autonomous"'),
        "max_turns": _agent("max_turns", *_whole(1, 10_000)),
        "max_wall_seconds": _agent("max_wall_seconds", *_seconds(0, 86400)),
        "max_total_tokens": _agent("max_total_tokens", *_whole(1, 1_000_000_000)),
        "max_cost_usd": _agent("max_cost_usd", *_seconds(0, 100_000)),
        "approval_timeout_seconds": _agent("approval_timeout_seconds", *_seconds(0, 86400)),
        "allow": _agent("allow_rules", _strings, 'a list of rules such as ["bash(git status:*)"]'),
        "ask": _agent("ask_rules", _strings, "a list of rules"),
        "deny": _agent("deny_rules", _strings, "a list of rules"),
        "skill_token_budget": _agent("skill_token_budget", *_whole(0, 1_000_000)),
    },
    "notify": {
        "webhook_url": _Key("webhook_url", _plain(str), 'an http(s) URL, or "" for none', "notify"),
        "webhook_timeout_seconds": _Key(
            "webhook_timeout_seconds", _plain(float), "seconds", "notify"
        ),
        "webhook_retries": _Key("webhook_retries", _plain(int), "a whole number", "notify"),
        "command": _Key("command", _argv, 'a list such as ["notify-send", "{task_id}"]', "notify"),
        "on_states": _Key("on_states", _strings, 'a list such as ["FAILED"]', "notify"),
    },
    "events": {
        "max_age_days": _events(
            "max_age_days",
            (_number(float, 0, 36500, lo_open=True), "days, more than 0 and at most 36500"),
        ),
        "max_per_task": _events("max_per_task", _whole(1, 1_000_000_000)),
        "max_events": _events("max_events", _whole(1, 1_000_000_000)),
        "compact_interval_minutes": _events(
            "compact_interval_minutes",
            (_number(float, 0, 10080, lo_open=True), "minutes, more than 0 and at most 10080"),
        ),
        "max_watcher_lag": _events("max_watcher_lag", _whole(1, 1_000_000_000)),
    },
}


def _recurses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except RecursionError:
        return True
    except tomllib.TOMLDecodeError:
        return False
    return False


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?")
_ASSIGN = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")


def _too_deep(text: str, source: str) -> ConfigError:
    """The error for a value nested deeper than tomllib can recurse, naming its line
    and, when it can tell, its section and key."""
    lines = text.splitlines(keepends=True)
    # The first line whose prefix recurses too deep: tomllib reads left to right, so
    # every longer prefix does too.
    lo, hi = 1, max(len(lines), 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if _recurses("".join(lines[:mid])):
            hi = mid
        else:
            lo = mid + 1
    section = ""
    for line in lines[: lo - 1]:
        header = _HEADER.fullmatch(line.rstrip("\r\n"))
        if header:
            section = header.group(1)
    assign = _ASSIGN.match(lines[lo - 1]) if lines else None
    name, hint = "a value", ""
    if section and assign:
        name = f"{section}.{assign.group(1)}"
        key = _SCHEMA.get(section, {}).get(assign.group(1))
        if key is not None:
            hint = f"; use {key.allowed}"
    elif section:
        name = f"a value in [{section}]"
    return ConfigError(f"{source}: line {lo}: {name} is nested too deeply{hint}")


def parse(text: str, source: str = "config.toml") -> Config:
    # Some editors start a UTF-8 file with a byte-order mark; TOML has no use for it.
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise _too_deep(text, source) from None
    groups: dict[str, dict[str, object]] = {"": {}}
    for section, body in data.items():
        keys = _SCHEMA.get(section)
        if keys is None:
            allowed = ", ".join(f"[{s}]" for s in _SCHEMA)
            raise ConfigError(f"{source}: unknown section [{section}]; allowed: {allowed}")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: {section} must be a table ([{section}])")
        for name, raw in body.items():
            key = keys.get(name)
            if key is None:
                allowed = ", ".join(keys)
                raise ConfigError(f"{source}: unknown key {section}.{name}; allowed: {allowed}")
            try:
                value = key.convert(raw)
            except (ValueError, TypeError):
                raise ConfigError(
                    f"{source}: {section}.{name} = {raw!r} is not allowed; use {key.allowed}"
                ) from None
            groups.setdefault(key.group, {})[key.attr] = value
    config = Config(**groups.pop(""))  # type: ignore[arg-type]
    nested = {g: replace(getattr(config, g), **v) for g, v in groups.items()}
    config = replace(config, **nested)
    try:
        config.notify.validate()
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load(path: Path) -> Config:
    """The config at `path`, or the defaults when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))
