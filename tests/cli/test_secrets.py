"""The CLI's secrets, in process: the masked prompt driven through a pipe, the
format and name checks, `--verify` against a local fake API, the check that
`local start` makes, and the hand-over of secrets on the daemon's stdin."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from cli import launcher
from cli.errors import CliError, ExitCode
from cli.run import build_spec
from cli.run_args import parse_secrets
from cli.secret_prompt import PromptIO, Verdict, ask, check_key
from cli.secrets import ensure_required, local_infos, not_set_message, required_names
from protos import secret_service_pb2
from shared.paths import Paths
from shared.secretstore import SecretStore, Source

KEY = "sk-ant-api03-test-0123456789abcdef"
GOOD = "sk-ant-api03-good-0123456789abcdef"


class MemoryKeyring(KeyringBackend):
    """A usable keyring that lives in this process only."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.data.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@contextlib.contextmanager
def _use_keyring(backend: KeyringBackend) -> Iterator[None]:
    """This process's keyring is `backend` for one test (never the user's own)."""
    previous = keyring.core._keyring_backend
    keyring.set_keyring(backend)
    try:
        yield
    finally:
        keyring.core._keyring_backend = previous


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    with _use_keyring(backend):
        yield backend


@pytest.fixture
def no_keyring() -> Iterator[None]:
    with _use_keyring(fail.Keyring()):  # type: ignore[no-untyped-call]
        yield


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "config", tmp_path / "state", tmp_path / "run")


@pytest.fixture
def pipe() -> Iterator[PipeInput]:
    with create_pipe_input() as pipe_input:
        yield pipe_input


def io_for(pipe: PipeInput) -> PromptIO:
    return PromptIO(pipe, DummyOutput())


# -- the prompt ------------------------------------------------------------------


async def test_prompt_returns_the_entry(
    pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text(KEY + "\r")
    assert await ask("ANTHROPIC_API_KEY", io=io_for(pipe)) == KEY
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    assert "warning" not in captured.err


async def test_prompt_asks_again_after_an_empty_entry(
    pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text("\r")
    pipe.send_text(KEY + "\r")
    assert await ask("ANTHROPIC_API_KEY", io=io_for(pipe)) == KEY
    assert "ANTHROPIC_API_KEY is empty" in capsys.readouterr().err


async def test_prompt_gives_up_after_three_empty_entries(pipe: PipeInput) -> None:
    pipe.send_text("\r\r\r")
    with pytest.raises(CliError) as err:
        await ask("ANTHROPIC_API_KEY", io=io_for(pipe))
    assert err.value.exit_code == ExitCode.USAGE
    assert "nothing stored" in err.value.message


@pytest.mark.parametrize("key", ["\x03", "\x04"], ids=["ctrl-c", "ctrl-d"])
async def test_prompt_interrupted_is_130(pipe: PipeInput, key: str) -> None:
    pipe.send_text("sk-ant" if key == "\x03" else "")
    pipe.send_text(key)
    with pytest.raises(CliError) as err:
        await ask("ANTHROPIC_API_KEY", io=io_for(pipe))
    assert err.value.exit_code == 130
    assert "not stored" in err.value.message


async def test_prompt_warns_about_the_format(
    pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text("not-an-anthropic-key\r")
    # A warning, never a refusal.
    assert await ask("ANTHROPIC_API_KEY", io=io_for(pipe)) == "not-an-anthropic-key"
    err = capsys.readouterr().err
    assert "does not start with sk-ant-" in err
    assert "not-an-anthropic-key" not in err


async def test_other_names_get_no_format_warning(
    pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text("ghp_whatever\r")
    assert await ask("GITHUB_TOKEN", io=io_for(pipe)) == "ghp_whatever"
    assert "warning" not in capsys.readouterr().err


# -- --verify against a fake API ---------------------------------------------------


class FakeApi(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        FakeApi.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        code = 200 if self.headers.get("x-api-key") == GOOD else 401
        body = b'{"data": []}' if code == 200 else b'{"type": "error"}'
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    FakeApi.seen = []
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_check_key_makes_one_cheap_authenticated_call(fake_api: str) -> None:
    assert check_key(GOOD, fake_api).verdict is Verdict.ACCEPTED
    refused = check_key(KEY, fake_api)
    assert (refused.verdict, refused.detail) == (Verdict.REFUSED, "HTTP 401")
    first = FakeApi.seen[0]
    assert first["path"] == "/v1/models?limit=1"
    assert first["x-api-key"] == GOOD
    assert first["anthropic-version"] == "2023-06-01"


def test_check_key_offline_is_unknown() -> None:
    with socket_closed() as url:
        result = check_key(GOOD, url)
    assert result.verdict is Verdict.UNKNOWN
    assert GOOD not in result.detail


def test_check_key_never_echoes_a_bad_value(fake_api: str) -> None:
    # http.client's own error would quote the header's value.
    result = check_key("sk-ant-bad\nvalue", fake_api)
    assert result.verdict is Verdict.UNKNOWN
    assert "sk-ant" not in result.detail


class socket_closed:
    """A URL where nothing listens."""

    def __enter__(self) -> str:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *args: object) -> None:
        pass


async def test_prompt_verify_asks_again_after_a_refusal(
    pipe: PipeInput, fake_api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text(KEY + "\r")
    pipe.send_text(GOOD + "\r")
    assert await ask("ANTHROPIC_API_KEY", io=io_for(pipe), check=True) == GOOD
    err = capsys.readouterr().err
    assert "the API refused this key (HTTP 401)" in err
    assert KEY not in err and GOOD not in err


async def test_prompt_verify_offline_stores_with_a_warning(
    pipe: PipeInput, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket_closed() as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        pipe.send_text(KEY + "\r")
        assert await ask("ANTHROPIC_API_KEY", io=io_for(pipe), check=True) == KEY
    assert "could not verify ANTHROPIC_API_KEY" in capsys.readouterr().err


# -- names -------------------------------------------------------------------------


def test_secret_names_are_checked() -> None:
    assert parse_secrets(["GITHUB_TOKEN", "A", "GITHUB_TOKEN"]) == ["GITHUB_TOKEN", "A"]
    for bad in ("github_token", "1A", "A-B", "", "A B"):
        with pytest.raises(CliError) as err:
            parse_secrets([bad])
        assert err.value.exit_code == ExitCode.USAGE


def test_a_secret_flag_never_echoes_a_value() -> None:
    with pytest.raises(CliError) as err:
        parse_secrets(["GITHUB_TOKEN=ghp_secretvalue"])
    assert "ghp_secretvalue" not in err.value.message
    assert "only the name" in err.value.message


def test_run_fills_command_secrets() -> None:
    spec = build_spec(["env"], True, None, None, [], None, 0, ["GITHUB_TOKEN", "NPM_TOKEN"])
    assert list(spec.command.secrets) == ["GITHUB_TOKEN", "NPM_TOKEN"]


def test_required_names_from_the_config(paths: Paths) -> None:
    assert required_names(paths.config_file) == ["ANTHROPIC_API_KEY"]
    paths.config_dir.mkdir(parents=True)
    for text, expected in [
        ("[daemon]\n", ["ANTHROPIC_API_KEY"]),
        ("[secrets]\nrequired = []\n", []),
        ('[secrets]\nrequired = ["A", "B", "A"]\n', ["A", "B"]),
        ("not toml [", ["ANTHROPIC_API_KEY"]),
        ('[secrets]\nrequired = "A"\n', ["ANTHROPIC_API_KEY"]),
    ]:
        paths.config_file.write_text(text)
        assert required_names(paths.config_file) == expected, text


def test_not_set_message() -> None:
    assert not_set_message(["ANTHROPIC_API_KEY"]) == (
        "error: ANTHROPIC_API_KEY is not set: run `stigmer secrets set ANTHROPIC_API_KEY` "
        "(or export ANTHROPIC_API_KEY before `stigmer local start`)"
    )
    assert "A and B are not set" in not_set_message(["A", "B"])


# -- what `local start` checks before it starts the daemon ------------------------------


async def test_start_without_a_terminal_is_exit_4(paths: Paths, no_keyring: None) -> None:
    with pytest.raises(CliError) as err:
        await ensure_required(paths, {}, interactive=False)
    assert err.value.exit_code == 4
    assert "ANTHROPIC_API_KEY is not set" in err.value.message
    assert not paths.config_dir.exists()


async def test_start_takes_the_key_from_the_environment(paths: Paths, no_keyring: None) -> None:
    names = await ensure_required(paths, {"ANTHROPIC_API_KEY": KEY}, interactive=False)
    assert names == ["ANTHROPIC_API_KEY"]


async def test_start_asks_once_and_stores_in_the_keyring(
    paths: Paths, memory: MemoryKeyring, pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text(KEY + "\r")
    names = await ensure_required(paths, {}, io=io_for(pipe), interactive=True)
    assert names == ["ANTHROPIC_API_KEY"]
    assert memory.data == {("stigmer", "ANTHROPIC_API_KEY"): KEY}
    err = capsys.readouterr().err
    assert "stored ANTHROPIC_API_KEY in the keyring (…cdef)" in err
    assert KEY not in err
    # The next start asks nothing (no terminal needed).
    assert await ensure_required(paths, {}, interactive=False) == ["ANTHROPIC_API_KEY"]


async def test_start_interrupted_stores_nothing(
    paths: Paths, memory: MemoryKeyring, pipe: PipeInput
) -> None:
    pipe.send_text("\x03")
    with pytest.raises(CliError) as err:
        await ensure_required(paths, {}, io=io_for(pipe), interactive=True)
    assert err.value.exit_code == 130
    assert "the daemon was not started" in err.value.message
    assert memory.data == {}


async def test_start_without_a_keyring_says_the_ways_out(
    paths: Paths, no_keyring: None, pipe: PipeInput
) -> None:
    with pytest.raises(CliError) as err:
        await ensure_required(paths, {}, io=io_for(pipe), interactive=True)
    assert err.value.exit_code == 4
    message = err.value.message
    assert "no usable keyring" in message
    assert "Secret Service" in message and "export" in message
    assert "--insecure-storage" in message


async def test_start_insecure_storage_writes_a_private_file(
    paths: Paths, no_keyring: None, pipe: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe.send_text(KEY + "\r")
    await ensure_required(paths, {}, insecure=True, io=io_for(pipe), interactive=True)
    path = paths.config_dir / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEY in path.read_text()
    capsys.readouterr()
    # Each later start warns that it uses the plaintext file.
    await ensure_required(paths, {}, interactive=False)
    assert (
        f"using ANTHROPIC_API_KEY from the plaintext file {path} (--insecure-storage); "
        "prefer the keyring" in capsys.readouterr().err
    )


async def test_start_hands_over_stored_names_too(paths: Paths, no_keyring: None) -> None:
    store = SecretStore(paths.config_dir / "secrets.toml")
    assert await store.put("GITHUB_TOKEN", "ghp_x", insecure=True) is Source.PLAINTEXT
    names = await ensure_required(paths, {"ANTHROPIC_API_KEY": KEY}, interactive=False)
    assert names == ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]


async def test_local_list_never_shows_values(paths: Paths, no_keyring: None) -> None:
    store = SecretStore(paths.config_dir / "secrets.toml")
    await store.put("GITHUB_TOKEN", "ghp_0123456789abcdef", insecure=True)
    infos = await local_infos(paths, {"ANTHROPIC_API_KEY": KEY})
    by_name = {i.name: i for i in infos}
    assert by_name["ANTHROPIC_API_KEY"].source == secret_service_pb2.SECRET_SOURCE_ENVIRONMENT
    assert list(by_name["ANTHROPIC_API_KEY"].required_by) == ["provider"]
    assert by_name["GITHUB_TOKEN"].source == secret_service_pb2.SECRET_SOURCE_PLAINTEXT_FILE
    assert by_name["GITHUB_TOKEN"].hint == "…cdef"
    assert list(by_name["GITHUB_TOKEN"].required_by) == []
    text = str(infos)
    assert KEY not in text and "ghp_0123456789abcdef" not in text


# -- the hand-over on the daemon's stdin ---------------------------------------------------


def test_hand_over_moves_secrets_out_of_the_environment() -> None:
    environ = {"PATH": "/bin", "ANTHROPIC_API_KEY": KEY, "EMPTY_TOKEN": "", "OTHER": "x"}
    env, secrets = launcher.hand_over(environ, ["ANTHROPIC_API_KEY", "EMPTY_TOKEN", "GH_TOKEN"])
    assert env == {"PATH": "/bin", "OTHER": "x", "STIGMER_SECRETS_ON_STDIN": "1"}
    assert secrets == {"ANTHROPIC_API_KEY": KEY}
    assert environ["ANTHROPIC_API_KEY"] == KEY  # ours is left alone


_CHILD = """
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({"stdin": sys.stdin.read(), "environ": dict(os.environ), "cwd": os.getcwd()}, f)
"""


def test_spawn_writes_the_json_on_stdin_and_not_in_the_environment(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "child.json"
    real_popen = subprocess.Popen
    seen: dict[str, Any] = {}

    def fake_popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen["argv"] = argv
        seen["env"] = kwargs["env"]
        # The same way of starting, another program: it reports what it got.
        return real_popen([sys.executable, "-c", _CHILD, str(report)], **kwargs)

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_token_value_1234")
    monkeypatch.delenv("NPM_TOKEN", raising=False)
    process = launcher.spawn(paths, ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "NPM_TOKEN"])
    assert process.wait(30) == 0
    got = json.loads(report.read_text())
    assert json.loads(got["stdin"]) == {
        "ANTHROPIC_API_KEY": KEY,
        "GITHUB_TOKEN": "ghp_token_value_1234",
    }
    assert seen["argv"][1:] == ["-m", "daemon"]
    for environ in (seen["env"], got["environ"]):
        assert environ["STIGMER_SECRETS_ON_STDIN"] == "1"
        assert "ANTHROPIC_API_KEY" not in environ and "GITHUB_TOKEN" not in environ
        assert KEY not in json.dumps(environ)
    assert os.environ["ANTHROPIC_API_KEY"] == KEY


def test_spawn_with_no_secrets_writes_an_empty_object(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "child.json"
    real_popen = subprocess.Popen

    def fake_popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return real_popen([sys.executable, "-c", _CHILD, str(report)], **kwargs)

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert launcher.spawn(paths, ["ANTHROPIC_API_KEY"]).wait(30) == 0
    assert json.loads(report.read_text())["stdin"] == "{}"
