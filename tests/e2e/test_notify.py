"""Completion notifications delivered for real: a webhook to a local HTTP server and a
command that runs. The Notifier is driven in the test's event loop, as the daemon does."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.notify import Completion, Notifier, NotifyConfig
from shared.redact import MARK, Redactor
from tests.support import Daemon, wait_until, write_config

KEY = "sk-ant-api03-abcdefghijklmnop"
# A token in the webhook's path (Slack-style): never logged.
PATH = "/hooks/T0000/secret-path-token"
# What a failing server answers: never logged either.
ANSWER = b"server-side-details-not-for-logs"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    url: str
    # Statuses to answer, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r.body) for r in self.received]


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with state.lock:
                state.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = state.statuses.pop(0) if state.statuses else 200
            if state.delay:
                time.sleep(state.delay)
            # A client that gave up (the timeout test) has gone: nothing to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("content-length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{PATH}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def completion(**overrides: Any) -> Completion:
    values: dict[str, Any] = {
        "task_id": "t-5eed0001",
        "state": "SUCCEEDED",
        "summary": "exit 0",
        "error": "",
        "exit_code": 0,
        "kind": "command",
        "ended_at": 1_700_000_123.25,
        "cost_usd": 0.0,
    }
    values.update(overrides)
    return Completion(**values)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "daemon.notify" and r.levelno >= logging.WARNING
    ]


async def test_the_webhook_receives_the_completion(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    config = NotifyConfig(webhook_url=hook.url)
    config.validate()
    notifier = Notifier(config, Redactor(["hunter2-password"]).text)
    with caplog.at_level(logging.DEBUG, logger="daemon.notify"):
        notifier.notify(
            completion(
                task_id="t-agent01",
                state="FAILED",
                summary=f"the agent printed {KEY}",
                error="login failed with hunter2-password",
                exit_code=None,
                kind="agent",
                cost_usd=0.0421,
            )
        )
        await notifier.aclose()
    assert len(hook.received) == 1
    request = hook.received[0]
    assert request.path == PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("stigmer-local/")
    assert json.loads(request.body) == {
        "task_id": "t-agent01",
        "state": "FAILED",
        "summary": f"the agent printed {MARK}",
        "error": f"login failed with {MARK}",
        "exit_code": None,
        "kind": "agent",
        "ended_at": 1_700_000_123.25,
        "cost_usd": 0.0421,
    }
    assert KEY.encode() not in request.body
    assert warnings(caplog) == []


async def test_notify_returns_at_once(hook: Hook) -> None:
    hook.delay = 1.0
    notifier = Notifier(NotifyConfig(webhook_url=hook.url), str)
    started = time.monotonic()
    notifier.notify(completion())
    assert time.monotonic() - started < 0.1
    await notifier.aclose()
    assert hook.bodies() == [notifier.payload(completion())]


async def test_5xx_is_retried_until_delivered(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    hook.statuses = [500, 500]
    notifier = Notifier(NotifyConfig(webhook_url=hook.url, webhook_retries=2), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    assert len(hook.received) == 3
    assert all(body["task_id"] == "t-5eed0001" for body in hook.bodies())
    assert warnings(caplog) == []


async def test_5xx_to_the_last_try_is_logged_with_the_status_only(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.statuses = [503, 503, 503]
    notifier = Notifier(NotifyConfig(webhook_url=hook.url, webhook_retries=1), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    assert len(hook.received) == 2
    [warning] = warnings(caplog)
    assert "HTTP 503" in warning
    assert "t-5eed0001" in warning
    assert "2 attempt(s)" in warning
    assert ANSWER.decode() not in caplog.text
    assert "secret-path-token" not in caplog.text


async def test_4xx_is_not_retried(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    hook.statuses = [404]
    notifier = Notifier(NotifyConfig(webhook_url=hook.url, webhook_retries=2), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    assert len(hook.received) == 1
    [warning] = warnings(caplog)
    assert "HTTP 404" in warning


async def test_an_unreachable_webhook_logs_a_warning_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: every connection is refused.
    url = f"http://127.0.0.1:{port}{PATH}"
    notifier = Notifier(NotifyConfig(webhook_url=url, webhook_retries=1), str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    [warning] = warnings(caplog)
    assert f"http://127.0.0.1:{port}" in warning
    assert "not delivered after 2 attempt(s)" in warning
    assert "secret-path-token" not in caplog.text


async def test_a_webhook_slower_than_its_timeout_is_given_up(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.delay = 2.0
    config = NotifyConfig(webhook_url=hook.url, webhook_timeout_seconds=0.3, webhook_retries=0)
    notifier = Notifier(config, str)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion())
        await notifier.aclose(timeout=10)
    assert time.monotonic() - started < 1.5
    [warning] = warnings(caplog)
    assert "not delivered" in warning


async def test_the_command_runs_with_the_task_id_as_an_argument(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "notified.txt"
    # The shell script is ours and fixed; the values come in as "$1" "$2" "$3", never as code.
    config = NotifyConfig(
        command=(
            "sh",
            "-c",
            f'printf "%s\\n" "$1" "$2" "$3" > {out}',
            "sh",
            "{task_id}",
            "{state}",
            "{summary}",
        )
    )
    config.validate()
    hostile = f"; touch {tmp_path / 'pwned'} $(touch {tmp_path / 'pwned2'})"
    notifier = Notifier(config, str)
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.notify(completion(state="TIMED_OUT", summary=hostile))
        await notifier.aclose(timeout=10)
    assert out.read_text().splitlines() == ["t-5eed0001", "TIMED_OUT", hostile]
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()
    assert warnings(caplog) == []


async def test_webhook_and_command_both_deliver(hook: Hook, tmp_path: Path) -> None:
    out = tmp_path / "id.txt"
    config = NotifyConfig(
        webhook_url=hook.url,
        command=("sh", "-c", f'echo "$1" > {out}', "sh", "{task_id}"),
        on_states=("CANCELLED",),
    )
    notifier = Notifier(config, str)
    notifier.notify(completion(task_id="t-skipped", state="SUCCEEDED"))
    notifier.notify(completion(task_id="t-cancel01", state="CANCELLED"))
    await notifier.aclose(timeout=10)
    assert [body["task_id"] for body in hook.bodies()] == ["t-cancel01"]
    assert out.read_text() == "t-cancel01\n"


async def test_the_daemon_posts_when_a_task_ends(daemon: Daemon, home: Path) -> None:
    """Wired end to end: config [notify] webhook_url, a command task, the POST."""
    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        write_config(
            home,
            f'[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
            f'[notify]\nwebhook_url = "{url}"\non_states = ["FAILED"]\n',
        )
        client = await daemon.start()
        ok = await client.create(["true"])
        bad = await client.create(["sh", "-c", "exit 4"])
        for task in (ok, bad):
            await client.events(task.id)
        await wait_until(lambda: received, what="the webhook POST")
        assert [r["task_id"] for r in received] == [bad.id]
        assert received[0]["state"] == "FAILED" and received[0]["exit_code"] == 4
    finally:
        server.shutdown()
        server.server_close()
