"""`stigmer audit`: every agent tool call, its policy decision and who approved it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime

if TYPE_CHECKING:
    from protos.task_service_pb2 import AuditRecord

# ListAudit answers at most this many per page.
_MAX_PAGE = 1000

AUDIT_COLUMNS = [
    "TIME",
    "TASK",
    "TOOL",
    "INPUT",
    "DECISION",
    "RULE",
    "APPROVED BY",
    "EXIT",
    "DURATION",
]


def audit(
    task: Annotated[
        str | None,
        typer.Option("--task", "-t", help="Only this task's calls.", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many records, newest first.")
    ] = 50,
    json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List agent tool calls: what ran, what the policy decided, who approved, how it ended."""
    runtime.run(_audit(task or "", limit, json))


def audit_row(record: AuditRecord) -> list[str]:
    from cli.agent_view import decision_label, input_summary, one_line

    ts = record.time
    when = "-"
    if ts.seconds or ts.nanos:
        from datetime import UTC

        when = ts.ToDatetime(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if record.HasField("exit_code"):
        exit_text = str(record.exit_code)
    else:
        exit_text = "error" if record.is_error else "-"
    seconds = record.duration_seconds
    duration = f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
    return [
        when,
        record.task_id,
        record.tool,
        input_summary(record.tool, record.input_json, 50),
        decision_label(record.decision),
        one_line(record.rule, 40) or "-",
        record.approved_by or "-",
        exit_text,
        duration,
    ]


_DECISION_STYLES = {"allow": None, "ask": "yellow", "deny": "red"}


async def _audit(task_id: str, limit: int, as_json: bool) -> int:
    from cli.agent_view import decision_label
    from cli.client import DaemonClient
    from cli.output import print_json, print_table, to_dict
    from protos.task_service_pb2 import ListAuditRequest

    records: list[AuditRecord] = []
    token = ""
    async with DaemonClient() as client:
        while len(records) < limit:
            page = await client.unary(
                client.tasks.ListAudit,
                ListAuditRequest(
                    task_id=task_id,
                    page_size=min(limit - len(records), _MAX_PAGE),
                    page_token=token,
                ),
            )
            records.extend(page.records)
            token = page.next_page_token
            if not token or not page.records:
                break
    records = records[:limit]
    if as_json:
        print_json([to_dict(r) for r in records])
        return 0
    print_table(
        AUDIT_COLUMNS,
        [audit_row(r) for r in records],
        [_DECISION_STYLES.get(decision_label(r.decision)) for r in records],
    )
    return 0
