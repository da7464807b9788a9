"""`make reliability-report`: every reliability figure in one table, also written to
docs/reliability.md (the README links to it). Runs the chaos and load tools at full
size and the fault, fuzz and security suites; takes about five minutes on 2 cores."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from typing import Any

from bench import chaos, load
from bench.common import REPO

REPORT = REPO / "docs" / "reliability.md"


def _pytest(*targets: str) -> tuple[str, str]:
    """(summary line, captured output) of a pytest run of `targets`."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *targets],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = next(
        (line.strip("= ") for line in reversed(lines) if " passed" in line or " failed" in line),
        f"exit code {result.returncode}",
    )
    return summary, result.stdout


def _fmt_states(states: dict[str, Any]) -> str:
    return ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items()))


def collect() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    c = chaos.run()
    rows += [
        (
            "faults",
            "chaos: tasks (agent) / runner kills / daemon kills",
            f"{c['tasks']} ({c['agent_tasks']}) / {c['runner_kills']} / {c['daemon_kills']}",
        ),
        ("faults", "chaos: final states", _fmt_states(c["states"])),
        ("faults", "chaos: retries seen, elapsed", f"{c['retries']}, {c['elapsed_seconds']:.1f} s"),
        (
            "faults",
            "chaos: terminal once, no seq gap or duplicate, integrity ok, no process left",
            "all ok" if c["ok"] else "FAILED: " + "; ".join(c["problems"]),
        ),
    ]
    disk, _ = _pytest("tests/e2e/test_disk_full.py")
    rows.append(("faults", "disk full: refused with RESOURCE_EXHAUSTED, recovers", disk))
    model, _ = _pytest(
        "tests/e2e/test_agent.py",
        "-k",
        "429 or error_event or truncated or 401 or max_turns or cost",
    )
    rows.append(("faults", "model server 429/529, mid-stream error, truncated, limits", model))
    lr = load.run(10_000, 16, 64)
    rows += [
        (
            "load",
            "tasks / runners / watchers",
            f"{lr['tasks']} / {lr['runners']} / {lr['watchers']}",
        ),
        ("load", "throughput", f"{lr['throughput']:.1f} tasks/s"),
        (
            "load",
            "submit to start p50 / p99",
            f"{lr['start_latency_p50_ms']:.0f} ms / {lr['start_latency_p99_ms']:.0f} ms",
        ),
        (
            "load",
            "watchers complete, duplicates",
            f"{lr['watchers_complete']}, {lr['watcher_duplicates']}",
        ),
        ("load", "daemon RSS at the end", f"{lr['daemon_rss_mib']:.1f} MiB"),
        (
            "load",
            "database size (at end / after stop)",
            f"{lr['database_mib_at_end']:.1f} / {lr['database_mib_after_stop']:.1f} MiB",
        ),
    ]
    fuzz, out = _pytest("tests/fuzz")
    tried = re.search(r"fuzz: (\d+) inputs tried across (\d+) RPCs", out)
    rows.append(("bad input", "RPC fuzzer and malformed files", fuzz))
    if tried:
        rows.append(("bad input", "inputs tried", f"{tried.group(1)} across {tried.group(2)} RPCs"))
    security, _ = _pytest(
        "tests/e2e/test_security.py",
        "tests/e2e/test_secrets.py",
        "tests/runner/test_tools_paths.py",
    )
    rows.append(("security", "other users, tokens, canary, workspace escapes", security))
    return rows


def render(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[1]) for r in rows)
    lines = [f"{area:<10} {what:<{width}}  {value}" for area, what, value in rows]
    return "\n".join(lines)


def main() -> None:
    rows = collect()
    table = render(rows)
    print(table)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    REPORT.write_text(
        "# Reliability report\n\n"
        f"Made by `make reliability-report` on {stamp} (2 cores).\n\n"
        "| area | figure | value |\n|---|---|---|\n"
        + "".join(f"| {a} | {w} | {v} |\n" for a, w, v in rows)
    )
    print(f"\nwritten to {REPORT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
