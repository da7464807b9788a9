"""The audit: one row per agent tool call (tool, redacted input, decision, who
approved, exit code, duration), put together from the events of the call."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from daemon.model import AuditRecord
from daemon.store import Store

# Calls whose result never came (a runner died mid-call) are forgotten past this many.
MAX_OPEN_CALLS = 10_000


class AuditTrail:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._open: OrderedDict[tuple[str, str], AuditRecord] = OrderedDict()

    def _update(self, task_id: str, attempt: int, call_id: str, **changes: object) -> None:
        key = (task_id, call_id)
        record = self._open.pop(key, None) or AuditRecord(task_id, attempt, call_id)
        self._open[key] = replace(record, **changes)  # type: ignore[arg-type]
        while len(self._open) > MAX_OPEN_CALLS:
            self._open.popitem(last=False)

    def call(self, task_id: str, attempt: int, call_id: str, tool: str, input_json: str) -> None:
        self._update(task_id, attempt, call_id, tool=tool, input_json=input_json)

    def decided(self, task_id: str, attempt: int, call_id: str, decision: str, rule: str) -> None:
        self._update(task_id, attempt, call_id, decision=decision, rule=rule)

    def approved(self, task_id: str, call_id: str, by: str, approved: bool) -> None:
        key = (task_id, call_id)
        attempt = self._open[key].attempt if key in self._open else 0
        self._update(task_id, attempt, call_id, approved_by=by if approved else f"denied by {by}")

    def result(
        self,
        task_id: str,
        attempt: int,
        call_id: str,
        is_error: bool,
        exit_code: int | None,
        duration: float,
    ) -> None:
        record = self._open.pop((task_id, call_id), None) or AuditRecord(task_id, attempt, call_id)
        self._store.insert_audit(
            replace(
                record,
                attempt=attempt,
                is_error=is_error,
                exit_code=exit_code,
                duration_seconds=duration,
                time=self._clock(),
            )
        )

    def records(
        self, task_id: str, limit: int, before: int | None
    ) -> tuple[list[AuditRecord], int | None]:
        return self._store.list_audit(task_id, limit, before)
