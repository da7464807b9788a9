"""`stigmer runner ...` input checks and log tails, with no daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli.errors import UsageError
from cli.runners import check_target, last_lines
from tests.support import STIGMER, env_for


def stigmer(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STIGMER, *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_check_target() -> None:
    check_target("runner-0", False)
    check_target(None, True)
    with pytest.raises(UsageError, match="not both"):
        check_target("runner-0", True)
    with pytest.raises(UsageError, match="or --all"):
        check_target(None, False)
    with pytest.raises(UsageError, match="or --all"):
        check_target("", False)


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
@pytest.mark.parametrize("target", [(), ("runner-0", "--all")])
def test_id_or_all_is_checked_before_the_daemon(
    tmp_path: Path, action: str, target: tuple[str, ...]
) -> None:
    # No daemon runs here: exit 2 (not 3) shows the check comes first.
    result = stigmer(tmp_path, "runner", action, *target)
    assert result.returncode == 2
    assert "--all" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("stop", "--drain"), ("restart", "--drain", "--json")])
def test_drain_still_needs_a_target(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = stigmer(tmp_path, "runner", *args)
    assert result.returncode == 2 and "--all" in result.stderr


@pytest.mark.parametrize("count", ["-1", "65", "x"])
def test_scale_out_of_range(tmp_path: Path, count: str) -> None:
    result = stigmer(tmp_path, "runner", "scale", "--", count)
    assert result.returncode == 2 and result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("runner", "start", "--all"),
        ("runner", "scale", "2"),
        ("runner", "logs", "runner-0"),
        ("top",),
        ("top", "--once"),
    ],
)
def test_daemon_down_is_exit_3(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = stigmer(tmp_path, *args)
    assert result.returncode == 3
    assert result.stderr == "daemon not running: start it with `stigmer local start`\n"


def test_last_lines() -> None:
    data = b"a\nb\nc\nd\n"
    assert last_lines(data, 2, from_start=True) == b"c\nd\n"
    assert last_lines(data, 10, from_start=True) == data
    # Not from the start: the first line may be cut, so it never shows.
    assert last_lines(data, 10, from_start=False) == b"b\nc\nd\n"
    assert last_lines(b"x\ny\npartial", 2, from_start=True) == b"y\npartial"
    assert last_lines(data, 0, from_start=True) == b""
    assert last_lines(b"", 5, from_start=True) == b""
    # A carriage return (a progress bar) is not a line break.
    assert last_lines(b"1\n2\r3\n", 1, from_start=True) == b"2\r3\n"
