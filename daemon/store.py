"""The task store: SQLite in WAL mode. Events are numbered and stored here before
anyone sees them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from daemon.errors import StorageFull
from daemon.model import (
    TERMINAL_STATES,
    AgentConstraints,
    AgentLimits,
    AgentSpec,
    AuditRecord,
    CommandSpec,
    Event,
    NewEvent,
    Task,
    TaskResult,
    TaskSpec,
    TaskState,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    request_id TEXT UNIQUE,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    runner_id TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    create_time REAL NOT NULL,
    start_time REAL,
    end_time REAL,
    exit_code INTEGER,
    error TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    last_seq INTEGER NOT NULL DEFAULT 0,
    -- highest runner event index stored for the current attempt (dedupe of resends)
    published_index INTEGER NOT NULL DEFAULT 0,
    workspace_path TEXT NOT NULL DEFAULT '',
    -- a queued task waiting for this secret, until block_deadline
    blocked_on TEXT NOT NULL DEFAULT '',
    block_deadline REAL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    -- lowest seq of the task still stored: compaction drops the ones below it
    first_seq INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks(state, pos);
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    time REAL NOT NULL,
    runner_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_task ON events(task_id, seq) WHERE task_id != '';
CREATE TABLE IF NOT EXISTS audit (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    input_json TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    exit_code INTEGER,
    is_error INTEGER NOT NULL,
    duration_seconds REAL NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_task ON audit(task_id, pos);
-- compacted_through: the highest cursor compaction dropped (0: none yet)
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_ACTIVE = (TaskState.CLAIMED.value, TaskState.RUNNING.value)
_TERMINAL = tuple(sorted(s.value for s in TERMINAL_STATES))
_TERMINAL_SQL = ",".join(f"'{s}'" for s in _TERMINAL)
# A stored event compaction may drop: a runner or daemon event, or an event of a task
# that has ended, other than its last one (the finished event).
_DROPPABLE = (
    "(events.task_id = '' OR (events.kind != 'finished' AND EXISTS (SELECT 1 FROM tasks t"
    f" WHERE t.id = events.task_id AND t.state IN ({_TERMINAL_SQL})"
    " AND events.seq < t.last_seq)))"
)


@dataclass(frozen=True)
class Compaction:
    """What one compaction step dropped."""

    events: int
    tasks: int


def _spec_to_json(spec: TaskSpec) -> str:
    return json.dumps(asdict(spec), separators=(",", ":"))


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    """JSON gives lists where the records hold tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _spec_from_json(text: str) -> TaskSpec:
    data = json.loads(text)
    command = data.pop("command", None)
    agent = data.pop("agent", None)
    if agent is not None:
        limits = AgentLimits(**agent.pop("limits"))
        constraints = AgentConstraints(**_tuples(agent.pop("constraints")))
        agent = AgentSpec(limits=limits, constraints=constraints, **_tuples(agent))
    return TaskSpec(
        command=CommandSpec(**_tuples(command)) if command is not None else None,
        agent=agent,
        **data,
    )


def _task(row: sqlite3.Row) -> Task:
    state = TaskState(row["state"])
    result = (
        TaskResult(
            exit_code=row["exit_code"],
            error=row["error"],
            summary=row["summary"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=row["cost_usd"],
            turns=row["turns"],
        )
        if state.terminal
        else None
    )
    return Task(
        id=row["id"],
        request_id=row["request_id"] or "",
        spec=_spec_from_json(row["spec"]),
        state=state,
        attempt=row["attempt"],
        runner_id=row["runner_id"],
        cancel_requested=bool(row["cancel_requested"]),
        create_time=row["create_time"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        result=result,
        last_seq=row["last_seq"],
        workspace_path=row["workspace_path"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(
        cursor=row["cursor"],
        task_id=row["task_id"],
        seq=row["seq"],
        attempt=row["attempt"],
        time=row["time"],
        runner_id=row["runner_id"],
        kind=row["kind"],
        payload=row["payload"],
    )


class _Connection(sqlite3.Connection):
    """Turns SQLite's "disk is full" into the error callers act on, wherever it happens."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc


def _translated(exc: sqlite3.OperationalError) -> Exception:
    if "full" not in str(exc) and "disk I/O" not in str(exc):
        return exc
    return StorageFull(
        "the state folder has no space left: free some there (see `stigmer local status`"
        " for its path); new work is refused until then, nothing stored is lost",
    )


class Store:
    """All reads and writes of tasks and events. Calls are short and synchronous;
    WAL keeps readers from blocking the writer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode loses no committed transaction on a process crash,
        # only possibly the last ones on a power cut.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Databases made by an earlier version lack the newer columns."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
        for column, ddl in (
            ("blocked_on", "blocked_on TEXT NOT NULL DEFAULT ''"),
            ("block_deadline", "block_deadline REAL"),
            ("input_tokens", "input_tokens INTEGER NOT NULL DEFAULT 0"),
            ("output_tokens", "output_tokens INTEGER NOT NULL DEFAULT 0"),
            ("cost_usd", "cost_usd REAL NOT NULL DEFAULT 0"),
            ("turns", "turns INTEGER NOT NULL DEFAULT 0"),
            ("first_seq", "first_seq INTEGER NOT NULL DEFAULT 1"),
        ):
            if column not in have:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {ddl}")

    def close(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a full disk) leaves the transaction open; end it.
            with suppress(sqlite3.Error, StorageFull):
                self._db.execute("ROLLBACK")
            raise

    # -- tasks ---------------------------------------------------------------

    def insert_task(
        self,
        task_id: str,
        request_id: str,
        spec: TaskSpec,
        workspace_path: str,
        now: float,
        first_event: NewEvent,
    ) -> tuple[Task, list[Event]]:
        with self._tx() as db:
            db.execute(
                "INSERT INTO tasks (id, request_id, spec, state, create_time, workspace_path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    request_id or None,
                    _spec_to_json(spec),
                    TaskState.QUEUED.value,
                    now,
                    workspace_path,
                ),
            )
            events = self._append(db, task_id, 0, [first_event])
        return self.get_task(task_id), events  # type: ignore[return-value]

    def get_task(self, task_id: str) -> Task | None:
        row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _task(row) if row else None

    def get_by_request_id(self, request_id: str) -> Task | None:
        row = self._db.execute("SELECT * FROM tasks WHERE request_id = ?", (request_id,)).fetchone()
        return _task(row) if row else None

    def list_tasks(
        self, states: Sequence[TaskState], limit: int, before_pos: int | None
    ) -> tuple[list[Task], int | None]:
        """Newest first. Returns the page and the position to continue before, if more."""
        where: list[str] = []
        args: list[object] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(s.value for s in states)
        if before_pos is not None:
            where.append("pos < ?")
            args.append(before_pos)
        sql = "SELECT * FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY pos DESC LIMIT ?"
        rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_task(r) for r in rows], (rows[-1]["pos"] if more else None)

    def ended_before(self, task_ids: Sequence[str], before: float) -> set[str]:
        """Which of `task_ids` ended before `before` (unknown ids count as ended long ago)."""
        if not task_ids:
            return set()
        marks = ",".join("?" * len(task_ids))
        rows = self._db.execute(
            f"SELECT id, end_time FROM tasks WHERE id IN ({marks})", tuple(task_ids)
        ).fetchall()
        known = {r["id"]: r["end_time"] for r in rows}
        return {
            t for t in task_ids if t not in known or (known[t] is not None and known[t] < before)
        }

    def count_by_state(self) -> dict[TaskState, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        return {TaskState(r[0]): r[1] for r in rows}

    def active_task_id(self, runner_id: str) -> str | None:
        row = self._db.execute(
            "SELECT id FROM tasks WHERE runner_id = ? AND state IN (?, ?) LIMIT 1",
            (runner_id, *_ACTIVE),
        ).fetchone()
        return row[0] if row else None

    def active_tasks(self, runner_id: str | None = None) -> list[Task]:
        sql = "SELECT * FROM tasks WHERE state IN (?, ?)"
        args: tuple[str, ...] = _ACTIVE
        if runner_id is not None:
            sql += " AND runner_id = ?"
            args = (*_ACTIVE, runner_id)
        return [_task(r) for r in self._db.execute(sql, args).fetchall()]

    def next_queued(self) -> Task | None:
        """The oldest queued task that is not waiting for a secret."""
        row = self._db.execute(
            "SELECT * FROM tasks WHERE state = ? AND blocked_on = '' ORDER BY pos LIMIT 1",
            (TaskState.QUEUED.value,),
        ).fetchone()
        return _task(row) if row else None

    def claim(self, task_id: str, runner_id: str, event: NewEvent) -> Task | None:
        """Claims `task_id` for `runner_id` if it is still queued: one UPDATE, so two
        runners can never both win it."""
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET state = ?, attempt = attempt + 1, runner_id = ?,"
                " published_index = 0, start_time = NULL"
                " WHERE id = ? AND state = ? AND blocked_on = '' RETURNING attempt",
                (TaskState.CLAIMED.value, runner_id, task_id, TaskState.QUEUED.value),
            ).fetchone()
            if row is None:
                return None
            self._append(db, task_id, row["attempt"], [event])
        return self.get_task(task_id)

    def block(self, task_id: str, secret: str, deadline: float, event: NewEvent) -> list[Event]:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET blocked_on = ?, block_deadline = ? WHERE id = ?",
                (secret, deadline, task_id),
            )
            attempt = db.execute("SELECT attempt FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return self._append(db, task_id, attempt[0], [event])

    def unblock(self, secret: str | None = None) -> int:
        """Lets tasks waiting for `secret` (or for any) be claimed again."""
        sql = "UPDATE tasks SET blocked_on = '' WHERE state = ? AND blocked_on != ''"
        args: tuple[str, ...] = (TaskState.QUEUED.value,)
        if secret is not None:
            sql += " AND blocked_on = ?"
            args = (*args, secret)
        return self._db.execute(sql, args).rowcount

    def blocked_past(self, now: float) -> list[Task]:
        rows = self._db.execute(
            "SELECT * FROM tasks WHERE state = ? AND blocked_on != '' AND block_deadline <= ?",
            (TaskState.QUEUED.value, now),
        ).fetchall()
        return [_task(r) for r in rows]

    def blocked_secret(self, task_id: str) -> str:
        row = self._db.execute("SELECT blocked_on FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return str(row[0]) if row else ""

    def set_running(self, task_id: str, attempt: int, now: float) -> None:
        self._db.execute(
            "UPDATE tasks SET state = ?, start_time = ? WHERE id = ? AND attempt = ? AND state = ?",
            (TaskState.RUNNING.value, now, task_id, attempt, TaskState.CLAIMED.value),
        )

    def request_cancel(self, task_id: str) -> None:
        self._db.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))

    def finish(
        self,
        task_id: str,
        state: TaskState,
        result: TaskResult,
        now: float,
        event: NewEvent,
        attempt: int,
    ) -> list[Event]:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET state = ?, end_time = ?, exit_code = ?, error = ?, summary = ?,"
                " input_tokens = ?, output_tokens = ?, cost_usd = ?, turns = ? WHERE id = ?",
                (
                    state.value,
                    now,
                    result.exit_code,
                    result.error,
                    result.summary,
                    result.input_tokens,
                    result.output_tokens,
                    result.cost_usd,
                    result.turns,
                    task_id,
                ),
            )
            return self._append(db, task_id, attempt, [event])

    def requeue(self, task_id: str, attempt: int, events: Sequence[NewEvent]) -> list[Event]:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET state = ?, runner_id = '', start_time = NULL WHERE id = ?",
                (TaskState.QUEUED.value, task_id),
            )
            return self._append(db, task_id, attempt, events)

    # -- events --------------------------------------------------------------

    def append_published(
        self, task_id: str, attempt: int, first_index: int, events: Sequence[NewEvent]
    ) -> tuple[int, list[Event]]:
        """Stores a runner's batch, dropping indices already stored. Returns the
        highest stored index and the events newly stored."""
        with self._tx() as db:
            row = db.execute(
                "SELECT published_index FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
            stored = row["published_index"]
            skip = max(0, stored + 1 - first_index)
            fresh = events[skip:]
            if first_index > stored + 1 or not fresh:
                # A gap means the runner lost track; keep what we have and say so.
                return stored, []
            new = self._append(db, task_id, attempt, fresh)
            acked = first_index + len(events) - 1
            db.execute("UPDATE tasks SET published_index = ? WHERE id = ?", (acked, task_id))
            return acked, new

    def _append(
        self, db: sqlite3.Connection, task_id: str, attempt: int, events: Iterable[NewEvent]
    ) -> list[Event]:
        last = db.execute("SELECT last_seq FROM tasks WHERE id = ?", (task_id,)).fetchone()[0]
        rows = []
        for event in events:
            last += 1
            rows.append(
                (task_id, last, attempt, event.time, event.runner_id, event.kind, event.payload)
            )
        db.executemany(
            "INSERT INTO events (task_id, seq, attempt, time, runner_id, kind, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        # One writer inside one transaction: AUTOINCREMENT hands out consecutive cursors.
        end = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        cursors = range(end - len(rows) + 1, end + 1)
        db.execute("UPDATE tasks SET last_seq = ? WHERE id = ?", (last, task_id))
        return [
            Event(c, r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            for c, r in zip(cursors, rows, strict=True)
        ]

    def append_global(self, event: NewEvent) -> Event:
        """A runner or daemon event: on the bus, in no task's sequence."""
        cursor = self._db.execute(
            "INSERT INTO events (task_id, seq, attempt, time, runner_id, kind, payload)"
            " VALUES ('', 0, 0, ?, ?, ?, ?)",
            (event.time, event.runner_id, event.kind, event.payload),
        ).lastrowid
        assert cursor is not None
        return Event(cursor, "", 0, 0, event.time, event.runner_id, event.kind, event.payload)

    # -- audit ---------------------------------------------------------------

    def insert_audit(self, record: AuditRecord) -> None:
        self._db.execute(
            "INSERT INTO audit (task_id, attempt, call_id, tool, input_json, decision, rule,"
            " approved_by, exit_code, is_error, duration_seconds, time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.task_id,
                record.attempt,
                record.call_id,
                record.tool,
                record.input_json,
                record.decision,
                record.rule,
                record.approved_by,
                record.exit_code,
                int(record.is_error),
                record.duration_seconds,
                record.time,
            ),
        )

    def list_audit(
        self, task_id: str, limit: int, before_pos: int | None
    ) -> tuple[list[AuditRecord], int | None]:
        where: list[str] = []
        args: list[object] = []
        if task_id:
            where.append("task_id = ?")
            args.append(task_id)
        if before_pos is not None:
            where.append("pos < ?")
            args.append(before_pos)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.execute(sql + " ORDER BY pos DESC LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        records = [
            AuditRecord(
                task_id=r["task_id"],
                attempt=r["attempt"],
                call_id=r["call_id"],
                tool=r["tool"],
                input_json=r["input_json"],
                decision=r["decision"],
                rule=r["rule"],
                approved_by=r["approved_by"],
                exit_code=r["exit_code"],
                is_error=bool(r["is_error"]),
                duration_seconds=r["duration_seconds"],
                time=r["time"],
            )
            for r in rows
        ]
        return records, (rows[-1]["pos"] if more else None)

    def append(self, task_id: str, attempt: int, events: Sequence[NewEvent]) -> list[Event]:
        """Daemon-made events of a task (approvals, say), numbered with the rest."""
        with self._tx() as db:
            return self._append(db, task_id, attempt, events)

    def last_cursor(self) -> int:
        """The highest cursor handed out (that event may have been compacted since)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def events_after_cursor(self, cursor: int, limit: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?", (cursor, limit)
        ).fetchall()
        return [_event(r) for r in rows]

    def events_after(self, task_id: str, after_seq: int, limit: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (task_id, after_seq, limit),
        ).fetchall()
        return [_event(r) for r in rows]

    # -- retention -----------------------------------------------------------

    def seq_bounds(self, task_id: str) -> tuple[int, int] | None:
        """The lowest and highest seq of the task still stored (first > last: none)."""
        row = self._db.execute(
            "SELECT first_seq, last_seq FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def compacted_through(self) -> int:
        """The highest cursor compaction dropped: a Subscribe after a lower cursor would
        miss events."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'compacted_through'").fetchone()
        return int(row[0]) if row else 0

    def event_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def compact(
        self, before_time: float, max_per_task: int, max_events: int, limit: int
    ) -> Compaction:
        """Drops at most `limit` events, oldest first: those stored before `before_time`,
        those past the newest `max_per_task` of a task, and the oldest beyond
        `max_events` in all. Events of tasks that have not ended, and the last (finished)
        event of each task, are never dropped: a task keeps a contiguous tail of its
        events, from `first_seq` to `last_seq`. Call again until it drops nothing."""
        with self._tx() as db:
            victims = self._per_task_victims(db, max_per_task, limit)
            if not victims:
                victims = self._oldest_victims(db, before_time, max_events, limit)
            if not victims:
                return Compaction(0, 0)
            marks = ",".join("?" * len(victims))
            db.execute(f"DELETE FROM events WHERE cursor IN ({marks})", [v[0] for v in victims])
            dropped = {task_id for _, task_id, _ in victims if task_id}
            db.executemany(
                "UPDATE tasks SET first_seq = COALESCE((SELECT MIN(seq) FROM events"
                " WHERE task_id = tasks.id AND task_id != ''), last_seq + 1) WHERE id = ?",
                [(task_id,) for task_id in dropped],
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('compacted_through', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
                (max(v[0] for v in victims),),
            )
            return Compaction(len(victims), len(dropped))

    def _per_task_victims(
        self, db: sqlite3.Connection, max_per_task: int, limit: int
    ) -> list[tuple[int, str, int]]:
        victims: list[tuple[int, str, int]] = []
        rows = db.execute(
            f"SELECT id, first_seq, last_seq FROM tasks WHERE state IN ({_TERMINAL_SQL})"
            " AND last_seq - first_seq + 1 > ?",
            (max(max_per_task, 1),),
        ).fetchall()
        for row in rows:
            keep_from = row["last_seq"] - max(max_per_task, 1) + 1
            victims += [
                (r[0], row["id"], r[1])
                for r in db.execute(
                    "SELECT cursor, seq FROM events WHERE task_id = ? AND task_id != ''"
                    " AND seq < ? AND kind != 'finished' ORDER BY seq LIMIT ?",
                    (row["id"], keep_from, limit - len(victims)),
                )
            ]
            if len(victims) >= limit:
                break
        return victims

    def _oldest_victims(
        self, db: sqlite3.Connection, before_time: float, max_events: int, limit: int
    ) -> list[tuple[int, str, int]]:
        # Cursors grow with time: everything droppable below the first young event goes.
        young = db.execute(
            "SELECT cursor FROM events WHERE time >= ? ORDER BY cursor LIMIT 1", (before_time,)
        ).fetchone()
        bound = int(young[0]) if young else self.last_cursor() + 1
        excess = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0]) - max_events
        if excess > 0:
            nth = db.execute(
                f"SELECT cursor FROM events WHERE {_DROPPABLE} ORDER BY cursor LIMIT 1 OFFSET ?",
                (excess - 1,),
            ).fetchone()
            if nth is None:  # fewer droppable than the excess: drop them all
                nth = (self.last_cursor(),)
            bound = max(bound, int(nth[0]) + 1)
        rows = db.execute(
            f"SELECT cursor, task_id, seq FROM events WHERE cursor < ? AND {_DROPPABLE}"
            " ORDER BY cursor LIMIT ?",
            (bound, limit),
        ).fetchall()
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]
