"""Event retention: compaction at start and on a timer, per [events] in config.toml.

What is dropped: events of ended tasks older than max_age_days, past the newest
max_per_task of a task, and the oldest beyond max_events in all; runner and daemon events
by age and the global count. What is never dropped: any event of a task that has not
ended, and the last (finished) event of each task; a task's state and result live in
the tasks table and stay. Each task keeps a contiguous tail (first_seq..last_seq), and
the store remembers the highest cursor it dropped, so WatchTask and Subscribe answer
OUT_OF_RANGE (reason CURSOR_TOO_OLD) instead of skipping silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from daemon.config import EventPolicy
from daemon.store import Store

log = logging.getLogger(__name__)

# Events dropped per transaction: the event loop (and the runners' writes) get a turn
# between steps.
STEP = 5000
DAY = 86400.0


async def compact(store: Store, policy: EventPolicy, now: float, step: int = STEP) -> int:
    """Runs compaction steps until nothing more is due; returns the events dropped."""
    total = 0
    while True:
        done = store.compact(
            now - policy.max_age_days * DAY, policy.max_per_task, policy.max_events, step
        )
        total += done.events
        if done.events == 0:
            break
        await asyncio.sleep(0)
    if total:
        log.info(
            "compacted %d event(s); events now start after cursor %d",
            total,
            store.compacted_through(),
        )
    return total


async def run(store: Store, policy: EventPolicy, clock: Callable[[], float]) -> None:
    """Compacts at once, then every compact_interval_minutes, until cancelled."""
    while True:
        try:
            await compact(store, policy, clock())
        except Exception:  # a bad pass must not stop later ones
            log.exception("event compaction failed; retrying at the next interval")
        await asyncio.sleep(policy.compact_interval_minutes * 60)
