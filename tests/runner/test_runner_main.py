"""The runner process on its own: bad environment, wrong parent, unreachable daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import runner

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-never-printed"


def run_runner(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STIGMER_DAEMON_ADDRESS": "unix:///nonexistent/stigmer-test/stigmer.sock",
        "STIGMER_RUNNER_ID": "runner-7",
        "STIGMER_RUNNER_TOKEN": TOKEN,
        "STIGMER_DAEMON_PID": str(os.getpid()),
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "runner"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_exits_nonzero_when_the_daemon_is_unreachable() -> None:
    started = time.monotonic()
    done = run_runner()
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    assert "runner-7" in done.stderr
    assert "unix:///nonexistent/stigmer-test/stigmer.sock is unavailable" in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_exits_at_once_when_the_daemon_is_not_its_parent() -> None:
    done = run_runner(STIGMER_DAEMON_PID="1")
    assert done.returncode == 1
    assert "not this runner's parent" in done.stderr


def test_refuses_an_environment_without_its_variables() -> None:
    done = run_runner(STIGMER_RUNNER_TOKEN="")
    assert done.returncode == 2
    assert "missing STIGMER_RUNNER_TOKEN" in done.stderr


def test_version_matches_the_package() -> None:
    assert runner.__version__ == version("stigmer-local")
