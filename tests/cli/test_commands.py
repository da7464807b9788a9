"""The real `stigmer` console script, run against a STIGMER_HOME with no daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STIGMER = str(Path(sys.executable).parent / "stigmer")
NOT_RUNNING = "daemon not running: start it with `stigmer local start`\n"


def stigmer(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "STIGMER_"))}
    env["STIGMER_HOME"] = str(home)
    return subprocess.run(
        [STIGMER, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("local", "status"),
        ("local", "status", "--json"),
        ("task", "list"),
        ("task", "list", "--json"),
        ("task", "get", "t-000000000000"),
        ("runner", "list", "--json"),
        ("run", "--cmd", "--", "true"),
    ],
)
def test_daemon_down_is_one_line_and_exit_3(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = stigmer(tmp_path, *args)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == NOT_RUNNING


def test_stale_socket_is_daemon_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stigmer.sock").write_text("")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "token").write_text("x\n")
    result = stigmer(tmp_path, "task", "list", "--json")
    assert (result.returncode, result.stdout, result.stderr) == (3, "", NOT_RUNNING)


def test_socket_without_token_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stigmer.sock").write_text("")
    result = stigmer(tmp_path, "task", "list")
    assert result.returncode == 1
    assert "token file" in result.stderr
    assert "Traceback" not in result.stderr


def test_stop_when_not_running_is_fine(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "local", "stop")
    assert (result.returncode, result.stdout) == (0, "")
    assert "not running" in result.stderr


def test_run_cmd_without_argv_is_usage_error(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "run", "--cmd")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--cmd" in result.stderr and "no program" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_cmd_takes_one_prompt(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "run", "--", "echo", "hi")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "quote the prompt" in result.stderr
    assert "stigmer run --cmd -- echo hi" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run",), "no prompt given"),
        (("run", "x", "--level", "boss"), "--level 'boss'"),
        (("run", "x", "--env", "A=1"), "--env is for programs run with --cmd"),
        (("run", "--cmd", "--level", "intern", "--", "true"), "--level is for agent runs"),
        (("run", "x", "--workspace", ".", "--repo", "r"), "--workspace and --repo"),
        (("run", "x", "--branch", "main"), "--branch needs --repo"),
        (("task", "approve", "t-1", "a-1", "--deny", "--always"), "--always"),
        (("task", "submit", "no-such-file.yaml"), "no such file"),
    ],
)
def test_agent_usage_errors_need_no_daemon(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    result = stigmer(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_task_file_is_exit_2_without_a_daemon(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("goal: [1]\nscope: x\n")
    result = stigmer(tmp_path, "task", "submit", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {bad}: 2 problems; nothing was submitted:",
        f"  {bad}:1: goal: must be a string (got a list)",
        f"  {bad}:2: scope: must be a mapping of fields (got 'x')",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("run", "do it"),
        ("audit",),
        ("task", "approve", "t-1", "a-1"),
    ],
)
def test_agent_commands_without_a_daemon_exit_3(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = stigmer(tmp_path, *args)
    assert (result.returncode, result.stdout, result.stderr) == (3, "", NOT_RUNNING)


def test_run_bad_env_names_the_option(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "run", "--cmd", "--env", "NOVALUE", "--", "true")
    assert result.returncode == 2
    assert "--env 'NOVALUE'" in result.stderr


def test_bad_state_names_the_option(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "task", "list", "--state", "bogus")
    assert result.returncode == 2
    assert "--state 'bogus'" in result.stderr
    assert "running" in result.stderr


@pytest.mark.parametrize("value", ["abc", "0"])
def test_bad_limit_is_usage_error(tmp_path: Path, value: str) -> None:
    result = stigmer(tmp_path, "task", "list", "--limit", value)
    assert result.returncode == 2
    assert "--limit" in result.stderr


def test_logs_without_a_log(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "local", "logs")
    assert (result.returncode, result.stdout) == (0, "")
    assert "no daemon log yet" in result.stderr


def test_logs_prints_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "state" / "logs" / "daemon.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    result = stigmer(tmp_path, "local", "logs", "-n", "3")
    assert result.returncode == 0
    assert result.stdout == "line 97\nline 98\nline 99\n"


def test_version(tmp_path: Path) -> None:
    result = stigmer(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("stigmer ")
