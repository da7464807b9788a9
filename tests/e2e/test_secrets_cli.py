"""`stigmer secrets ...` and the key check of `stigmer local start`, as real
processes: headless (no keyring at all) and against a real, private Secret Service."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import STIGMER, env_for, gone, write_config

KEY = "sk-ant-api03-e2e-canary-7f3a9c0d1e2b"
GOOD = "sk-ant-api03-e2e-good-5d6e7f8a9b0c"
CONFIG = '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n'


def stigmer(
    home: Path,
    *args: str,
    extra_env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    env = env_for(home)
    env.update(extra_env or {})
    return subprocess.run(
        [STIGMER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
    )


def daemon_files(home: Path) -> list[Path]:
    return [p for p in (home / "run" / "stigmer.pid", home / "run" / "stigmer.sock") if p.exists()]


def stop_daemon(home: Path, extra_env: dict[str, str] | None = None) -> None:
    stigmer(home, "local", "stop", extra_env=extra_env)
    pid_file = home / "run" / "stigmer.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def secret_home(tmp_path: Path) -> Path:
    """A home whose config requires the default key (ANTHROPIC_API_KEY)."""
    path = tmp_path / "home"
    write_config(path, CONFIG)
    return path


def assert_no_value(result: subprocess.CompletedProcess[str], *values: str) -> None:
    for value in values:
        assert value not in result.stdout
        assert value not in result.stderr


# -- headless: no terminal, no keyring --------------------------------------------------


def test_start_without_a_terminal_names_the_missing_key(secret_home: Path) -> None:
    result = stigmer(secret_home, "local", "start")
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        "error: ANTHROPIC_API_KEY is not set: run `stigmer secrets set ANTHROPIC_API_KEY` "
        "(or export ANTHROPIC_API_KEY before `stigmer local start`)\n"
    )
    assert daemon_files(secret_home) == []
    assert not (secret_home / "state" / "logs" / "daemon.log").exists()


def test_set_without_a_keyring_says_the_three_ways_out(secret_home: Path) -> None:
    result = stigmer(secret_home, "secrets", "set", "GITHUB_TOKEN", "--stdin", stdin="ghp_x\n")
    assert result.returncode == 4
    message = result.stderr
    assert "no usable keyring" in message
    assert "Secret Service" in message
    assert "export GITHUB_TOKEN=" in message
    assert "--insecure-storage" in message
    assert "Traceback" not in message
    assert not (secret_home / "config" / "secrets.toml").exists()


def test_set_without_a_terminal_or_stdin_is_usage(secret_home: Path) -> None:
    result = stigmer(secret_home, "secrets", "set", "GITHUB_TOKEN")
    assert result.returncode == 2
    assert "--stdin" in result.stderr


def test_set_refuses_bad_names_and_values_as_arguments(secret_home: Path) -> None:
    bad = stigmer(secret_home, "secrets", "set", "github-token", "--stdin", stdin="x")
    assert bad.returncode == 2 and "not a valid secret name" in bad.stderr
    as_argument = stigmer(secret_home, "secrets", "set", "GITHUB_TOKEN", KEY)
    assert as_argument.returncode == 2
    assert_no_value(as_argument, KEY)
    as_flag = stigmer(secret_home, "run", "--cmd", "--secret", f"X={KEY}", "--", "true")
    assert as_flag.returncode == 2
    assert_no_value(as_flag, KEY)


def test_insecure_storage_writes_a_private_file_and_warns(secret_home: Path) -> None:
    stored = stigmer(
        secret_home,
        "secrets",
        "set",
        "ANTHROPIC_API_KEY",
        "--stdin",
        "--insecure-storage",
        stdin=KEY + "\n",
    )
    assert stored.returncode == 0, stored.stderr
    path = secret_home / "config" / "secrets.toml"
    assert f"stored ANTHROPIC_API_KEY in the plaintext file {path} (…1e2b)" in stored.stderr
    assert "prefer the keyring" in stored.stderr
    assert_no_value(stored, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # One trailing newline cut, nothing else.
    assert f'"{KEY}"' in path.read_text()

    listed = stigmer(secret_home, "secrets", "list", "--json")
    assert listed.returncode == 0
    [info] = json.loads(listed.stdout)
    assert info == {
        "name": "ANTHROPIC_API_KEY",
        "source": "SECRET_SOURCE_PLAINTEXT_FILE",
        "hint": "…1e2b",
        "required_by": ["provider"],
    }
    assert_no_value(listed, KEY)

    try:
        started = stigmer(secret_home, "local", "start")
        assert started.returncode == 0, started.stderr
        assert (
            f"using ANTHROPIC_API_KEY from the plaintext file {path} (--insecure-storage); "
            "prefer the keyring" in started.stderr
        )
        assert_no_value(started, KEY)
    finally:
        stop_daemon(secret_home)

    removed = stigmer(secret_home, "secrets", "rm", "ANTHROPIC_API_KEY")
    assert removed.returncode == 0, removed.stderr
    assert "removed ANTHROPIC_API_KEY from the plaintext file" in removed.stderr
    assert KEY not in path.read_text()
    again = stigmer(secret_home, "secrets", "rm", "ANTHROPIC_API_KEY")
    assert again.returncode == 1
    assert "ANTHROPIC_API_KEY is not stored" in again.stderr


def test_an_exported_key_reaches_the_daemon_on_stdin_not_in_its_environment(
    secret_home: Path,
) -> None:
    exported = {"ANTHROPIC_API_KEY": KEY}
    try:
        started = stigmer(secret_home, "local", "start", "--json", extra_env=exported)
        assert started.returncode == 0, started.stderr
        pid = json.loads(started.stdout)["pid"]
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert KEY.encode() not in environ
        assert b"STIGMER_SECRETS_ON_STDIN=1" in environ
        assert_no_value(started, KEY)
        # The daemon has it all the same (asked without the variable here).
        listed = stigmer(secret_home, "secrets", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [info] = json.loads(listed.stdout)
        assert (info["source"], info["hint"]) == ("SECRET_SOURCE_ENVIRONMENT", "…1e2b")
        assert_no_value(listed, KEY)
    finally:
        stop_daemon(secret_home)


def test_restart_without_the_key_leaves_the_daemon_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, CONFIG + "[secrets]\nrequired = []\n")
    try:
        started = stigmer(home, "local", "start", "--json")
        assert started.returncode == 0, started.stderr
        pid = json.loads(started.stdout)["pid"]
        write_config(home, CONFIG + '[secrets]\nrequired = ["E2E_RESTART_TOKEN"]\n')
        restarted = stigmer(home, "local", "restart")
        assert restarted.returncode == 4
        assert "E2E_RESTART_TOKEN is not set" in restarted.stderr
        assert not gone(pid)
    finally:
        stop_daemon(home)


def test_status_headless(secret_home: Path) -> None:
    missing = stigmer(secret_home, "secrets", "status", "--json")
    assert missing.returncode == 1
    data = json.loads(missing.stdout)
    assert data["keyring"]["usable"] is False
    assert data["keyring"]["problem"]
    assert data["plaintext_file"]["in_use"] is False
    assert data["required"] == [
        {"name": "ANTHROPIC_API_KEY", "present": False, "source": "missing", "hint": ""}
    ]
    present = stigmer(
        secret_home, "secrets", "status", extra_env={"ANTHROPIC_API_KEY": KEY}, stdin=""
    )
    assert present.returncode == 0, present.stdout
    assert "ANTHROPIC_API_KEY" in present.stdout and "environment" in present.stdout
    assert_no_value(present, KEY)


# -- a real keyring ------------------------------------------------------------------------


def test_set_in_the_keyring_then_start_asks_nothing(
    secret_home: Path, keyring_env: dict[str, str]
) -> None:
    stored = stigmer(
        secret_home,
        "secrets",
        "set",
        "ANTHROPIC_API_KEY",
        "--stdin",
        extra_env=keyring_env,
        stdin=KEY + "\n",
    )
    try:
        assert stored.returncode == 0, stored.stderr
        assert "stored ANTHROPIC_API_KEY in the keyring (…1e2b)" in stored.stderr
        assert_no_value(stored, KEY)
        assert not (secret_home / "config" / "secrets.toml").exists()

        listed = stigmer(secret_home, "secrets", "list", "--json", extra_env=keyring_env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == [
            {
                "name": "ANTHROPIC_API_KEY",
                "source": "SECRET_SOURCE_KEYRING",
                "hint": "…1e2b",
                "required_by": ["provider"],
            }
        ]
        assert_no_value(listed, KEY)
        status = stigmer(secret_home, "secrets", "status", extra_env=keyring_env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "usable" in status.stdout and "present (keyring, …1e2b)" in status.stdout

        try:
            # No terminal: it would be exit code 4 if it had to ask.
            started = stigmer(secret_home, "local", "start", extra_env=keyring_env)
            assert started.returncode == 0, started.stderr
            assert_no_value(started, KEY)
            listed = stigmer(secret_home, "secrets", "list", "--json", extra_env=keyring_env)
            assert listed.returncode == 0, listed.stderr
            [info] = json.loads(listed.stdout)
            assert (info["source"], info["hint"]) == ("SECRET_SOURCE_KEYRING", "…1e2b")
            assert_no_value(listed, KEY)
        finally:
            stop_daemon(secret_home, keyring_env)
    finally:
        removed = stigmer(secret_home, "secrets", "rm", "ANTHROPIC_API_KEY", extra_env=keyring_env)
    assert removed.returncode == 0, removed.stderr
    assert "removed ANTHROPIC_API_KEY from the keyring" in removed.stderr
    gone_now = stigmer(secret_home, "secrets", "status", "--json", extra_env=keyring_env)
    assert gone_now.returncode == 1
    assert json.loads(gone_now.stdout)["required"][0]["present"] is False


def test_set_while_the_daemon_runs_goes_through_it(
    tmp_path: Path, keyring_env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    write_config(home, CONFIG + "[secrets]\nrequired = []\n")
    try:
        started = stigmer(home, "local", "start", extra_env=keyring_env)
        assert started.returncode == 0, started.stderr
        stored = stigmer(
            home,
            "secrets",
            "set",
            "E2E_DAEMON_TOKEN",
            "--stdin",
            extra_env=keyring_env,
            stdin="e2e-daemon-token-value-1234",
        )
        assert stored.returncode == 0, stored.stderr
        assert "stored E2E_DAEMON_TOKEN in the keyring (…1234)" in stored.stderr
        listed = stigmer(home, "secrets", "list", "--json", extra_env=keyring_env)
        assert listed.returncode == 0, listed.stderr
        by_name = {i["name"]: i for i in json.loads(listed.stdout)}
        assert by_name["E2E_DAEMON_TOKEN"]["source"] == "SECRET_SOURCE_KEYRING"
        assert by_name["E2E_DAEMON_TOKEN"]["hint"] == "…1234"
        assert_no_value(listed, "e2e-daemon-token-value-1234")
        removed = stigmer(home, "secrets", "rm", "E2E_DAEMON_TOKEN", extra_env=keyring_env)
        assert removed.returncode == 0, removed.stderr
        missing = stigmer(home, "secrets", "rm", "E2E_DAEMON_TOKEN", extra_env=keyring_env)
        assert missing.returncode == 1
        assert "E2E_DAEMON_TOKEN" in missing.stderr
    finally:
        stop_daemon(home, keyring_env)


# -- --verify against a local fake API --------------------------------------------------------


class FakeApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/v1/models?limit=1" and self.headers.get("x-api-key") == GOOD
        body = b'{"data": []}' if ok else b'{"type": "error"}'
        self.send_response(200 if ok else 401)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_verify_refuses_a_key_the_api_refuses(
    secret_home: Path, keyring_env: dict[str, str], fake_api: str
) -> None:
    env = {**keyring_env, "ANTHROPIC_BASE_URL": fake_api}
    args = ("secrets", "set", "ANTHROPIC_API_KEY", "--stdin", "--verify")
    refused = stigmer(secret_home, *args, extra_env=env, stdin=KEY)
    assert refused.returncode == 4
    assert "the API refused this key (HTTP 401)" in refused.stderr
    assert_no_value(refused, KEY)
    status = stigmer(secret_home, "secrets", "status", "--json", extra_env=env)
    assert json.loads(status.stdout)["required"][0]["present"] is False

    accepted = stigmer(secret_home, *args, extra_env=env, stdin=GOOD)
    try:
        assert accepted.returncode == 0, accepted.stderr
        assert "stored ANTHROPIC_API_KEY in the keyring" in accepted.stderr
        assert_no_value(accepted, GOOD)
    finally:
        stigmer(secret_home, "secrets", "rm", "ANTHROPIC_API_KEY", extra_env=env)


def test_verify_offline_stores_with_a_warning(secret_home: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = stigmer(
        secret_home,
        "secrets",
        "set",
        "ANTHROPIC_API_KEY",
        "--stdin",
        "--verify",
        "--insecure-storage",
        extra_env={"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"},
        stdin=KEY,
    )
    assert result.returncode == 0, result.stderr
    assert "could not verify ANTHROPIC_API_KEY" in result.stderr
    assert "storing it anyway" in result.stderr
    assert_no_value(result, KEY)
