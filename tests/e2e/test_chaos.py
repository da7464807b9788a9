"""The short form of `make chaos` (bench/chaos.py): runners and the daemon SIGKILLed while
tasks run, then every check the full run makes."""

from __future__ import annotations

import pytest

from bench import chaos


@pytest.mark.timeout(60)
def test_runner_and_daemon_kills_lose_no_task_and_leave_nothing_behind() -> None:
    result = chaos.run(tasks=60, runner_kills=10, daemon_kills=1, seconds=30)
    chaos.show(result)
    assert result["problems"] == [], result["problems"]
    assert result["ok"]
    checks = result["checks"]
    for name in (
        "all ended within 30 s",
        "chaos delivered",
        "every task once",
        "every task terminal",
        "events seq 1..n (API)",
        "one finished event, last (API)",
        "daemon stopped cleanly",
        "no process left",
        "integrity_check ok",
        "events seq 1..n, one finished, last (database)",
    ):
        assert checks.get(name) is True, name
    assert result["runner_kills"] == 10 and result["daemon_kills"] == 1
    assert sum(result["states"].values()) == 60
    assert set(result["states"]) <= {"SUCCEEDED", "FAILED"}
    # Kills of busy runners and of the daemon cost attempts, and were retried.
    assert result["retries"] >= 1
    assert result["elapsed_seconds"] < 30
