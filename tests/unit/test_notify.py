"""Completion notifications: checking the config, filling the command's arguments,
redaction, and which end states notify."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from daemon import notify
from daemon.notify import Completion, Notifier, NotifyConfig, fill
from shared.redact import MARK, Redactor

KEY = "sk-ant-api03-abcdefghijklmnop"


def completion(**overrides: Any) -> Completion:
    values: dict[str, Any] = {
        "task_id": "t-0123abcd",
        "state": "FAILED",
        "summary": "exit 2",
        "error": "boom",
        "exit_code": 2,
        "kind": "command",
        "ended_at": 1_700_000_000.5,
        "cost_usd": 0.0,
    }
    values.update(overrides)
    return Completion(**values)


# -- validate()


def test_the_defaults_are_valid_and_notify_of_every_end_state() -> None:
    config = NotifyConfig()
    config.validate()
    assert config.webhook_url == ""
    assert config.command == ()
    assert set(config.on_states) == {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


@pytest.mark.parametrize(
    "config",
    [
        NotifyConfig(webhook_url="http://127.0.0.1:8080/hook"),
        NotifyConfig(webhook_url="https://hooks.example.com/services/T0/B0/xyz?x=1"),
        NotifyConfig(webhook_url="http://[::1]:9000/"),
        NotifyConfig(webhook_timeout_seconds=0.5, webhook_retries=0),
        NotifyConfig(webhook_timeout_seconds=300, webhook_retries=10),
        NotifyConfig(command=("notify-send", "stigmer: {task_id} {state}", "{summary}")),
        NotifyConfig(command=("/usr/bin/logger", "{error} ({exit_code}) {{literal}}")),
        NotifyConfig(on_states=("FAILED", "TIMED_OUT")),
    ],
)
def test_valid_configs_pass(config: NotifyConfig) -> None:
    config.validate()


@pytest.mark.parametrize(
    ("config", "names"),
    [
        (NotifyConfig(webhook_url="ftp://x"), ["notify.webhook_url", "'ftp://x'", "http(s)"]),
        (NotifyConfig(webhook_url="example.com/hook"), ["notify.webhook_url", "http(s)"]),
        (NotifyConfig(webhook_url="http://"), ["notify.webhook_url"]),
        (NotifyConfig(webhook_url="http://host:99999/"), ["notify.webhook_url"]),
        (NotifyConfig(webhook_url="http://a b/"), ["notify.webhook_url"]),
        (NotifyConfig(webhook_timeout_seconds=0), ["notify.webhook_timeout_seconds", "more than"]),
        (NotifyConfig(webhook_timeout_seconds=-1), ["notify.webhook_timeout_seconds"]),
        (NotifyConfig(webhook_timeout_seconds=301), ["notify.webhook_timeout_seconds", "300"]),
        (NotifyConfig(webhook_retries=-1), ["notify.webhook_retries", "0 to 10"]),
        (NotifyConfig(webhook_retries=11), ["notify.webhook_retries"]),
        (NotifyConfig(webhook_retries=True), ["notify.webhook_retries"]),
        (NotifyConfig(webhook_retries=1.5), ["notify.webhook_retries"]),  # type: ignore[arg-type]
        (
            NotifyConfig(command="notify-send hi"),  # type: ignore[arg-type]
            ["notify.command", "list of arguments", "no shell"],
        ),
        (NotifyConfig(command=("",)), ["notify.command[0]", "program is empty"]),
        (
            NotifyConfig(command=("notify-send", "{task}")),
            ["notify.command[1]", "unknown placeholder {task}", "{task_id}"],
        ),
        (
            NotifyConfig(command=("notify-send", "{summary.__class__}")),
            ["notify.command[1]", "unknown placeholder"],
        ),
        (
            NotifyConfig(command=("notify-send", "{summary!r}")),
            ["notify.command[1]", "format or conversion"],
        ),
        (NotifyConfig(command=("notify-send", "{state")), ["notify.command[1]", "{{"]),
        (NotifyConfig(command=("notify-send", "a\x00b")), ["notify.command[1]", "NUL"]),
        (NotifyConfig(command=("{summary}",)), ["notify.command[0]", "placeholder"]),
        (NotifyConfig(on_states=("DONE",)), ["notify.on_states", "'DONE'", '"FAILED"']),
        (NotifyConfig(on_states=("RUNNING",)), ["notify.on_states", "not an end state"]),
        (NotifyConfig(on_states=()), ["notify.on_states", "empty"]),
        (NotifyConfig(on_states="FAILED"), ["notify.on_states", "list"]),  # type: ignore[arg-type]
    ],
)
def test_invalid_configs_name_the_key_and_the_fix(config: NotifyConfig, names: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        config.validate()
    for name in names:
        assert name in str(caught.value)


def test_an_empty_command_string_is_off() -> None:
    NotifyConfig(command="").validate()  # type: ignore[arg-type]


# -- the command's arguments


def test_placeholders_are_filled_per_argument() -> None:
    argv = fill(
        ("notify-send", "stigmer: {task_id} {state}", "{summary}", "{{x}} {exit_code}"),
        {"task_id": "t-1", "state": "SUCCEEDED", "summary": "done", "exit_code": "0"},
    )
    assert argv == ["notify-send", "stigmer: t-1 SUCCEEDED", "done", "{x} 0"]


def test_a_hostile_summary_stays_one_argument() -> None:
    hostile = '; rm -rf / && echo "$(id)" `whoami` {task_id} | tee x'
    config = NotifyConfig(command=("notify-send", "{task_id}", "{summary}", "x{error}y"))
    notifier = Notifier(config, redact=lambda text: text)
    argv = notifier.argv(completion(summary=hostile, error=" a b "))
    assert argv == ["notify-send", "t-0123abcd", hostile, "x a b y"]


def test_missing_values_fill_as_empty_and_nul_is_dropped() -> None:
    notifier = Notifier(NotifyConfig(command=("p", "[{exit_code}]", "{summary}")), str)
    assert notifier.argv(completion(exit_code=None, summary="a\x00b")) == ["p", "[]", "ab"]


def test_long_text_is_clipped_in_the_command_only() -> None:
    notifier = Notifier(NotifyConfig(command=("p", "{summary}")), str)
    long = "x" * 10_000
    assert len(notifier.argv(completion(summary=long))[1]) == notify.MAX_ARGUMENT_CHARS
    assert notifier.payload(completion(summary=long))["summary"] == long


async def test_the_command_is_run_without_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        seen.append((args, kwargs))
        return await real("true", **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    hostile = "; rm -rf /"
    notifier = Notifier(NotifyConfig(command=("notify-send", "{summary}")), str)
    notifier.notify(completion(summary=hostile))
    await notifier.aclose()
    assert len(seen) == 1
    args, kwargs = seen[0]
    assert args == ("notify-send", hostile)
    assert kwargs["stdin"] == asyncio.subprocess.DEVNULL
    assert kwargs["stdout"] == asyncio.subprocess.DEVNULL
    assert kwargs["stderr"] == asyncio.subprocess.PIPE
    assert "shell" not in kwargs


# -- redaction


def test_every_string_of_the_payload_is_redacted() -> None:
    redact = Redactor(["hunter2-password"]).text
    notifier = Notifier(NotifyConfig(webhook_url="http://127.0.0.1:1/"), redact)
    body = notifier.payload(
        completion(summary=f"printed {KEY}", error="pw=hunter2-password", exit_code=None)
    )
    assert body == {
        "task_id": "t-0123abcd",
        "state": "FAILED",
        "summary": f"printed {MARK}",
        "error": f"pw={MARK}",
        "exit_code": None,
        "kind": "command",
        "ended_at": 1_700_000_000.5,
        "cost_usd": 0.0,
    }


def test_the_command_arguments_are_redacted() -> None:
    redact = Redactor(["hunter2-password"]).text
    config = NotifyConfig(command=("notify-send", "{summary}", "{error}", "{task_id}"))
    argv = Notifier(config, redact).argv(completion(summary=KEY, error="hunter2-password!"))
    assert argv == ["notify-send", MARK, f"{MARK}!", "t-0123abcd"]


# -- which completions notify, and never raising


async def test_only_the_configured_end_states_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    async def fake_command(self: Notifier, done: Completion) -> None:
        ran.append(done.state)

    monkeypatch.setattr(Notifier, "_command", fake_command)
    notifier = Notifier(NotifyConfig(command=("p",), on_states=("FAILED", "TIMED_OUT")), str)
    for state in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "RUNNING"):
        notifier.notify(completion(state=state))
    await notifier.aclose()
    assert ran == ["FAILED", "TIMED_OUT"]


async def test_nothing_is_configured_so_nothing_runs() -> None:
    notifier = Notifier(NotifyConfig(), str)
    notifier.notify(completion())
    assert not notifier._pending
    await notifier.aclose()


def test_notify_outside_an_event_loop_logs_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(NotifyConfig(command=("p",)), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
    assert "no event loop" in caplog.text


async def test_a_failing_redactor_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("redactor broke")

    notifier = Notifier(NotifyConfig(command=("p", "{summary}")), broken)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose()
    assert "failed unexpectedly" in caplog.text


async def test_a_missing_program_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    program = "stigmer-no-such-notifier-0b1c"
    notifier = Notifier(NotifyConfig(command=(program, "{task_id}")), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        for _ in range(3):
            notifier.notify(completion())
            await asyncio.sleep(0.05)
        await notifier.aclose()
    warnings = [r for r in caplog.records if program in r.getMessage()]
    assert len(warnings) == 1
    assert "notify.command" in warnings[0].getMessage()


async def test_a_failing_command_logs_the_first_line_of_its_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = f'echo "first $1 {KEY}" >&2; echo second >&2; exit 3'
    notifier = Notifier(
        NotifyConfig(command=("sh", "-c", script, "sh", "{task_id}")), Redactor().text
    )
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose()
    assert "exited with 3" in caplog.text
    assert f"first t-0123abcd {MARK}" in caplog.text
    assert "second" not in caplog.text
    assert KEY not in caplog.text


async def test_a_hanging_command_is_killed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(notify, "COMMAND_TIMEOUT_SECONDS", 0.3)
    notifier = Notifier(NotifyConfig(command=("sleep", "30")), str)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    assert loop.time() - started < 5
    assert "was killed" in caplog.text


async def test_aclose_cancels_what_outlasts_its_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Notifier(NotifyConfig(command=("sleep", "30")), str)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=0.2)
    assert loop.time() - started < 3
    assert "cancelled at shutdown" in caplog.text
    assert not notifier._pending
    # Closed: later completions are not delivered.
    notifier.notify(completion())
    assert not notifier._pending
