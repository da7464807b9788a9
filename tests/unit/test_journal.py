"""The process journal: what a crashed daemon left is ended, a reused pid never is."""

from __future__ import annotations

import subprocess
from pathlib import Path

from daemon.supervision.journal import Entry, Journal, identify


def _group_leader() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_sweep_kills_recorded_groups(tmp_path: Path) -> None:
    leftover = _group_leader()
    try:
        entry = identify(leftover.pid)
        assert entry is not None
        Journal(tmp_path / "j.json").record("runner-0", entry)
        # A new daemon reads the journal the old one wrote.
        killed = Journal(tmp_path / "j.json").sweep()
        assert killed == [f"runner-0 (pid {leftover.pid})"]
        assert leftover.wait(10) == -9
    finally:
        leftover.kill()
        leftover.wait()


def test_sweep_spares_a_reused_pid(tmp_path: Path) -> None:
    bystander = _group_leader()
    try:
        entry = identify(bystander.pid)
        assert entry is not None
        # The same pid, but a process that started at another time: not ours.
        Journal(tmp_path / "j.json").record("runner-0", Entry(entry.pid, entry.create_time - 50))
        assert Journal(tmp_path / "j.json").sweep() == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_forget_and_missing_or_broken_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.json")
    assert journal.sweep() == []
    journal.record("runner-0", Entry(1, 0.0))
    journal.forget("runner-0")
    assert Journal(tmp_path / "j.json").sweep() == []
    (tmp_path / "j.json").write_text("{not json")
    assert Journal(tmp_path / "j.json").sweep() == []
