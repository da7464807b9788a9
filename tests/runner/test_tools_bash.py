"""The bash tool: output, exit codes, stdin, head and tail, timeout and cancel (group gone)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest

from runner.procgroup import signal_group
from runner.tools import Constraints, ToolResult, Workspace, run_tool
from runner.tools import bash as bash_tool
from runner.tools.bash import HeadTail, clamp_timeout, shell_argv

WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups a test saw; whatever is left of them is killed at the end."""
    seen: list[int] = []
    yield seen
    for pgid in seen:
        signal_group(pgid, signal.SIGKILL)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    env = {"PATH": os.environ.get("PATH", os.defpath), "MARKER": "from-workspace-env"}
    return Workspace(root, Constraints(), env)


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every kill here is of `sleep`, which dies on SIGTERM; the SIGKILL fallback is
    # covered by runner/procgroup's own tests.
    monkeypatch.setattr(bash_tool, "KILL_GRACE", 0.5)


async def bash(workspace: Workspace, command: str, **extra: object) -> ToolResult:
    return await run_tool("bash", {"command": command, **extra}, workspace)


async def test_output_and_exit_code(workspace: Workspace) -> None:
    result = await bash(workspace, "echo hello; exit 3")
    assert result.exit_code == 3
    assert not result.is_error
    assert result.output == "hello\nexit code 3"


async def test_success_says_exit_code_zero(workspace: Workspace) -> None:
    result = await bash(workspace, "printf 'no newline'")
    assert result.exit_code == 0
    assert result.output == "no newline\nexit code 0"


async def test_stdout_and_stderr_are_merged_in_order(workspace: Workspace) -> None:
    result = await bash(workspace, "echo 1; echo 2 >&2; echo 3; echo 4 >&2; echo 5")
    assert result.output == "1\n2\n3\n4\n5\nexit code 0"


async def test_empty_output_is_said(workspace: Workspace) -> None:
    result = await bash(workspace, "true")
    assert result.output == "(no output)\nexit code 0"
    result = await bash(workspace, "exit 7")
    assert result.output == "(no output)\nexit code 7"
    assert result.exit_code == 7


async def test_stdin_is_closed(workspace: Workspace) -> None:
    started = time.monotonic()
    result = await bash(workspace, "cat; read line; echo read=$?", timeout=20)
    assert result.output == "read=1\nexit code 0"
    assert time.monotonic() - started < 10


async def test_runs_in_the_workspace_with_its_environment(workspace: Workspace) -> None:
    os.environ["STIGMER_TOOLS_TEST_LEAK"] = "leaked"
    try:
        result = await bash(workspace, 'pwd; echo "$MARKER"; echo "[$STIGMER_TOOLS_TEST_LEAK]"')
    finally:
        del os.environ["STIGMER_TOOLS_TEST_LEAK"]
    assert result.output == f"{workspace.root}\nfrom-workspace-env\n[]\nexit code 0"


async def test_a_signal_death_is_reported(workspace: Workspace) -> None:
    result = await bash(workspace, "kill -TERM $$")
    assert result.exit_code == -signal.SIGTERM
    assert "killed by signal 15 (SIGTERM)" in result.output


async def test_long_output_keeps_head_and_tail(workspace: Workspace) -> None:
    command = "printf START; head -c 100000 /dev/zero | tr '\\0' a; printf END"
    result = await bash(workspace, command)
    total = 5 + 100000 + 3
    cut = total - bash_tool.HEAD_BYTES - bash_tool.TAIL_BYTES
    text = result.output
    assert text.startswith("START" + "a" * (bash_tool.HEAD_BYTES - 5) + "\n")
    assert f"\n[... {cut} bytes cut ...]\n" in text
    assert text.endswith("a" * (bash_tool.TAIL_BYTES - 3) + "END\nexit code 0")
    assert len(text) < bash_tool.HEAD_BYTES + bash_tool.TAIL_BYTES + 100


def test_head_tail_keeps_everything_that_fits() -> None:
    buffer = HeadTail(head=4, tail=4)
    for chunk in (b"ab", b"cdef", b"gh"):
        buffer.add(chunk)
    assert buffer.text() == "abcdefgh"
    buffer.add(b"ijklmnopqrstuvwxyz")
    assert buffer.text() == "abcd\n[... 18 bytes cut ...]\nwxyz"
    assert buffer.total == 26


def test_head_tail_many_small_chunks() -> None:
    buffer = HeadTail(head=3, tail=3)
    for byte in b"0123456789" * 10:
        buffer.add(bytes([byte]))
    assert buffer.text() == "012\n[... 94 bytes cut ...]\n789"


async def test_timeout_kills_the_whole_group(
    workspace: Workspace, groups: list[int], wait_until: WaitUntil
) -> None:
    started = time.monotonic()
    result = await bash(workspace, "echo started $$; sleep 30 & sleep 30", timeout=1)
    assert time.monotonic() - started < 10
    assert result.is_error
    assert result.exit_code is None
    first, *rest = result.output.splitlines()
    assert first.startswith("started ")
    pgid = int(first.split()[1])
    groups.append(pgid)
    assert rest == ["command timed out after 1 s; its process group was killed"]
    await wait_until(lambda: not group_members(pgid))


async def test_a_timeout_above_the_maximum_is_clamped(workspace: Workspace) -> None:
    assert clamp_timeout(None) == (bash_tool.DEFAULT_TIMEOUT, None)
    assert clamp_timeout(30) == (30, None)
    seconds, note = clamp_timeout(5000)
    assert seconds == bash_tool.MAX_TIMEOUT
    assert note is not None and "600 s was used" in note
    result = await bash(workspace, "echo hi", timeout=5000)
    assert result.output == (
        "hi\nnote: the timeout of 5000 s asked for is above the maximum; 600 s was used\n"
        "exit code 0"
    )


async def test_background_processes_are_killed_when_the_command_ends(
    workspace: Workspace, groups: list[int], wait_until: WaitUntil
) -> None:
    result = await bash(workspace, "echo $$; sleep 30 & sleep 31 & echo started")
    pgid = int(result.output.splitlines()[0])
    groups.append(pgid)
    assert result.output.splitlines()[1:] == ["started", "exit code 0"]
    await wait_until(lambda: not group_members(pgid))


async def test_a_process_that_left_the_group_does_not_hold_the_call(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, wait_until: WaitUntil
) -> None:
    monkeypatch.setattr(bash_tool, "DRAIN_TIMEOUT", 0.3)
    pidfile = workspace.root / "escaped.pid"
    command = (
        f"setsid sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 30' & "
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo launched"
    )
    try:
        result = await bash(workspace, command, timeout=20)
        assert result.output.splitlines()[0] == "launched"
        assert "still holds its output" in result.output
        assert result.exit_code == 0
    finally:
        await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        escaped = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped, signal.SIGKILL)
    await wait_until(lambda: not running(escaped))


async def test_cancel_kills_the_running_group(
    workspace: Workspace, groups: list[int], wait_until: WaitUntil
) -> None:
    pidfile = workspace.root / "group.pid"
    task = asyncio.create_task(
        bash(workspace, f"echo $$ > {pidfile}; sleep 30 & sleep 30", timeout=60)
    )
    try:
        await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        pgid = int(pidfile.read_text())
        groups.append(pgid)
        # The shell and both sleeps are running.
        await wait_until(lambda: len(group_members(pgid)) >= 3)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not group_members(pgid))


def test_shell_falls_back_to_sh(tmp_path: Path) -> None:
    only_sh = tmp_path / "bin"
    only_sh.mkdir()
    (only_sh / "sh").symlink_to("/bin/sh")
    assert shell_argv("echo hi", {"PATH": str(only_sh)}) == [str(only_sh / "sh"), "-c", "echo hi"]
    with_bash = tmp_path / "bin2"
    with_bash.mkdir()
    (with_bash / "bash").symlink_to(os.path.realpath("/bin/bash"))
    path = f"{with_bash}:{only_sh}"
    assert shell_argv("x", {"PATH": path}) == [str(with_bash / "bash"), "-c", "x"]


async def test_runs_with_sh_when_there_is_no_bash(tmp_path: Path) -> None:
    only_sh = tmp_path / "bin"
    only_sh.mkdir()
    (only_sh / "sh").symlink_to("/bin/sh")
    root = tmp_path / "ws"
    root.mkdir()
    workspace = Workspace(root, Constraints(), {"PATH": str(only_sh)})
    result = await bash(workspace, "echo $((6 * 7))")
    assert result.output == "42\nexit code 0"


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({}, "bash: field 'command' is required (a string)"),
        ({"command": 5}, "bash: field 'command' must be a string, not a number (5)"),
        ({"command": "  "}, "bash: field 'command' is empty"),
        ({"command": "true", "timeout": "5"}, "field 'timeout' must be a number of seconds"),
        ({"command": "true", "timeout": True}, "field 'timeout' must be a number of seconds"),
        ({"command": "true", "timeout": 0}, "field 'timeout' must be more than 0"),
        ({"command": "true", "cwd": "/"}, "bash: unknown field 'cwd'"),
    ],
)
async def test_bad_input_is_an_error_naming_the_field(
    workspace: Workspace, tool_input: dict[str, object], message: str
) -> None:
    result = await run_tool("bash", tool_input, workspace)
    assert result.is_error
    assert message in result.output
