"""`stigmer run PROMPT`, `task approve`, `audit` and `task submit` end to end: the real
`stigmer` command, a real daemon and runner, the real SDK against the fake Messages API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from protos import task_pb2, task_service_pb2
from tests.fake_anthropic import FakeAnthropic, fake_anthropic, reply, text, tool_use
from tests.support import STIGMER, Client, Daemon, env_for, write_config

KEY = "sk-ant-test-" + uuid.uuid4().hex
APPROVE = re.compile(r"stigmer task approve (t-[0-9a-f]+) (\S+)")


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


@pytest.fixture
async def client(daemon: Daemon, api: FakeAnthropic) -> AsyncIterator[Client]:
    write_config(
        daemon.home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
        f'[agent]\nbase_url = "{api.base_url}"\n',
    )
    yield await daemon.start(stdin_secrets={"ANTHROPIC_API_KEY": KEY})
    assert KEY not in daemon.log_text()


def stigmer(
    home: Path, *args: str, cwd: Path | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(STIGMER), *args],
        env=env_for(home),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


async def test_run_streams_the_text_and_the_calls_and_writes_the_file(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(
            text("Writing the file.", "Writing ", "the file."),
            tool_use("write_file", {"path": "hello.txt", "content": "hi\n"}),
        ),
        reply("Done: hello.txt says hi."),
    )
    # No --workspace: the agent works in the current directory, as `run --cmd` does.
    result = stigmer(daemon.home, "run", "make a file", "--level", "autonomous", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Writing the file.\nDone: hello.txt says hi.\n"
    assert (tmp_path / "hello.txt").read_text() == "hi\n"
    lines = result.stderr.splitlines()
    assert any(re.fullmatch(r". write_file  hello\.txt", line) for line in lines), lines
    assert any("wrote hello.txt" in line or "created hello.txt" in line for line in lines), lines
    # Off a terminal: no status line redrawn, one summary at the end.
    assert "\r" not in result.stderr
    assert re.search(r"succeeded · 2 turns · 200 in / 40 out tokens · \$", lines[-1]), lines
    assert api.message_requests[0].body["messages"][0]["content"] in (
        "make a file",
        [{"type": "text", "text": "make a file"}],
    )


async def test_run_json_is_one_event_per_line(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(reply("hi there"))
    result = stigmer(daemon.home, "run", "say hi", "--json", "-w", str(tmp_path))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [next(k for k in e if k not in _COMMON) for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "finished"
    assert "text_delta" in kinds and "usage" in kinds
    assert events[-1]["finished"]["state"] == "TASK_STATE_SUCCEEDED"


# The fields every event has; the other one is its payload.
_COMMON = {"task_id", "seq", "time", "attempt", "cursor", "runner_id"}


async def test_a_refused_key_fails_with_exit_1_and_says_how_to_fix_it(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.bad_keys.add(KEY)
    result = stigmer(daemon.home, "run", "anything", "-w", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the API refused the key (401)" in result.stderr
    assert "stigmer secrets set ANTHROPIC_API_KEY" in result.stderr


async def test_a_denied_call_is_shown_and_the_run_goes_on(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    api.script(
        reply(tool_use("bash", {"command": "rm -f keep.txt"})),
        reply("I may not remove it."),
    )
    result = stigmer(
        daemon.home,
        "run",
        "clean up",
        "--level",
        "autonomous",
        "--deny",
        "bash(rm:*)",
        "-w",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(re.fullmatch(r". bash  rm -f keep\.txt", line) for line in lines), lines
    assert any("denied by policy:" in line and "bash(rm:*)" in line for line in lines), lines
    assert (tmp_path / "keep.txt").read_text() == "precious"


@contextlib.asynccontextmanager
async def started(home: Path, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`stigmer ARGS` in the background, ended (and reaped) whatever happens."""
    process = await asyncio.create_subprocess_exec(
        str(STIGMER),
        *args,
        env=env_for(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def read_until(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> tuple[str, Any]:
    """Lines until one matches; returns what was read and the match."""
    seen = ""
    while True:
        line = (await asyncio.wait_for(stream.readline(), 60)).decode()
        if not line:
            raise AssertionError(f"ended before {pattern.pattern!r}:\n{seen}")
        seen += line
        match = pattern.search(line)
        if match:
            return seen, match


async def test_intern_asks_off_a_terminal_and_task_approve_answers(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(tool_use("bash", {"command": "echo approved > out.txt"}, "toolu_b")),
        reply("Ran it."),
    )
    async with started(
        daemon.home, "run", "run a command", "--level", "intern", "-w", str(tmp_path)
    ) as cli:
        assert cli.stderr is not None and cli.stdout is not None
        seen, match = await read_until(cli.stderr, APPROVE)
        assert "approval needed: bash: echo approved > out.txt" in seen
        task_id, approval_id = match.group(1), match.group(2)
        assert not (tmp_path / "out.txt").exists()

        answer = stigmer(daemon.home, "task", "approve", task_id, approval_id)
        assert answer.returncode == 0, answer.stderr
        assert f"approved {approval_id} of task {task_id}" in answer.stderr

        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, seen + err.decode()
        assert out.decode() == "Ran it.\n"
        rest = err.decode()
        assert "approved by cli:" in rest
        assert re.search(r"exit 0, no output", rest), rest
    assert (tmp_path / "out.txt").read_text() == "approved\n"

    # Answering again: the approval is closed, exit 1 with the daemon's reason.
    again = stigmer(daemon.home, "task", "approve", task_id, approval_id, "--deny")
    assert again.returncode == 1 and again.stderr.startswith("error: ")

    audit = stigmer(daemon.home, "audit", "--task", task_id, "--json")
    assert audit.returncode == 0, audit.stderr
    [record] = json.loads(audit.stdout)
    assert record["task_id"] == task_id and record["tool"] == "bash"
    assert record["call_id"] == "toolu_b"
    assert json.loads(record["input_json"]) == {"command": "echo approved > out.txt"}
    assert record["decision"] == "DECISION_ASK"
    assert record["approved_by"].startswith("cli:")
    assert record["exit_code"] == 0

    table = stigmer(daemon.home, "audit", "--task", task_id)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["TIME", "TASK", "TOOL", "INPUT"]
    assert task_id in row and "echo approved > out.txt" in row and "ask" in row


async def test_task_approve_deny_refuses_the_call(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(tool_use("write_file", {"path": "x.txt", "content": "x"})),
        reply("Could not write it."),
    )
    async with started(
        daemon.home, "run", "write x", "--level", "intern", "-w", str(tmp_path)
    ) as cli:
        assert cli.stderr is not None
        _, match = await read_until(cli.stderr, APPROVE)
        answer = stigmer(
            daemon.home, "task", "approve", match.group(1), match.group(2), "--deny",
            "--reason", "not now", "--json",
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        resolution = json.loads(answer.stdout)
        assert resolution["approved"] is False and resolution["reason"] == "not now"
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0
        assert re.search(r"denied by cli:\S+: not now", err.decode()), err.decode()
    assert not (tmp_path / "x.txt").exists()


TASK_FILE = """\
id: {id}
goal: Write the greeting file.
description: |
  It must say hello.
applicable_skills: []
scope:
  allowed_write_globs: ["*.txt"]
constraints:
  max_files_changed: 2
  timeout_seconds: 300
  denylisted_commands: ["git push"]
level: autonomous
workspace: ws
"""


async def test_task_submit_runs_the_file_and_is_idempotent(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "ws").mkdir()
    task_file = tmp_path / "greet.yaml"
    file_id = "greet-" + uuid.uuid4().hex[:8]
    task_file.write_text(TASK_FILE.format(id=file_id))
    api.script(
        reply(tool_use("write_file", {"path": "greeting.txt", "content": "hello\n"})),
        reply("Greeting written."),
    )
    result = stigmer(daemon.home, "task", "submit", str(task_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Greeting written.\n"
    assert (tmp_path / "ws" / "greeting.txt").read_text() == "hello\n"
    first = api.message_requests[0].body["messages"][0]["content"]
    prompt = first if isinstance(first, str) else first[0]["text"]
    assert prompt == "Write the greeting file.\n\nIt must say hello."

    # The same file again: the same task, nothing run twice.
    again = stigmer(daemon.home, "task", "submit", str(task_file), "--detach", "--json")
    assert again.returncode == 0, again.stderr
    task = json.loads(again.stdout)
    assert task["request_id"] == file_id
    assert task["spec"]["labels"] == {"task_file_id": file_id}
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    agent = task["spec"]["agent"]
    assert agent["policy_level"] == "POLICY_LEVEL_AUTONOMOUS"
    assert agent["limits"]["max_wall_seconds"] == 300
    assert agent["constraints"]["allowed_write_globs"] == ["*.txt"]
    assert agent["constraints"]["max_files_changed"] == 2
    assert agent["constraints"]["denylisted_commands"] == ["git push"]
    assert task["spec"]["workspace"]["path"] == str(tmp_path / "ws")
    assert len(api.message_requests) == 2


async def test_task_submit_of_a_malformed_file_lists_every_problem(
    client: Client, daemon: Daemon, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "goal: do it\n"
        "scope:\n"
        "  allowed_write_globs: src/**\n"
        "constraints:\n"
        "  max_files_changed: -3\n"
        "  timeout: 5\n"
        "level: boss\n"
    )
    result = stigmer(daemon.home, "task", "submit", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {bad}: 4 problems; nothing was submitted:"
    assert lines[1].startswith(f"  {bad}:3: scope.allowed_write_globs: must be a list of strings")
    assert lines[2].startswith(f"  {bad}:5: constraints.max_files_changed: must not be negative")
    assert lines[3].startswith(f"  {bad}:6: constraints.timeout: unknown field")
    assert lines[4].startswith(f"  {bad}:7: level: 'boss'")
    listed = await client.tasks.ListTasks(task_service_pb2.ListTasksRequest(), metadata=client.md)
    assert list(listed.tasks) == []


def run_on_a_terminal(home: Path, args: list[str], answers: list[bytes]) -> tuple[int, str]:
    """`stigmer ARGS` on a pseudo-terminal; each `approve?` prompt gets the next answer."""
    master, slave = pty.openpty()
    env = env_for(home)
    env["TERM"] = "xterm"
    process = subprocess.Popen(
        [str(STIGMER), *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    seen = b""
    prompts = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # the other side closed
                break
            if not data:
                break
            seen += data
            # One answer per request (prompt_toolkit draws its prompt more than once).
            asking = b"approve? [y]es / [n]o / [a]lways" in seen.split(b"\r\n")[-1]
            if answers and asking and seen.count(b"approval needed") > prompts:
                os.write(master, answers.pop(0))
                prompts += 1
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return process.returncode, seen.decode(errors="replace")


async def test_on_a_terminal_approvals_are_asked_inline_with_a_status_line(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(text("Let me run it."), tool_use("bash", {"command": "echo one >> log.txt"})),
        # Approved with "always": the same command again runs without asking.
        reply(tool_use("bash", {"command": "echo one >> log.txt"})),
        reply("Ran it twice."),
    )
    args = ["run", "log twice", "--level", "intern", "-w", str(tmp_path)]
    code, screen = await asyncio.to_thread(run_on_a_terminal, daemon.home, args, [b"a\r"])
    assert code == 0, screen
    assert (tmp_path / "log.txt").read_text() == "one\none\n"
    assert screen.count("approval needed: bash: echo one >> log.txt") == 1, screen
    assert "approved by cli:" in screen and "(always" in screen
    # The status line: redrawn in place with the turn, tokens, cost and time.
    assert re.search(r"\r\x1b\[2K(\x1b\[2m)?turn 2 · 200 in / 40 out · \$0\.\d{4} · 0:\d\d", screen)
    assert "Ran it twice." in screen
    assert "succeeded · 3 turns" in screen


async def test_ctrl_c_cancels_the_agent_task_and_exits_130(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(reply(text("slow " * 100, *(["slow "] * 100)), delay=0.1))
    async with started(daemon.home, "run", "take your time", "-w", str(tmp_path)) as cli:
        assert cli.stdout is not None and cli.stderr is not None
        assert (await asyncio.wait_for(cli.stdout.read(5), 60)) == b"slow "
        cli.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 130, err.decode()
    message = err.decode()
    match = re.search(r"cancelling task (t-[0-9a-f]+)", message)
    assert match, message
    assert "was cancelled" in message
    task = await client.get(match.group(1))
    assert task.state == task_pb2.TASK_STATE_CANCELLED
