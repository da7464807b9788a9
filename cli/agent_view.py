"""How an agent run reads in a terminal: folded tool calls and results, the status line.

Pure functions of the events (no I/O), so they are unit-tested as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from protos import event_pb2


@dataclass(frozen=True)
class Glyphs:
    call: str
    ok: str
    fail: str
    ask: str


UNICODE = Glyphs(call="▸", ok="✓", fail="✗", ask="?")
ASCII = Glyphs(call=">", ok="ok", fail="x", ask="?")


def glyphs_for(encoding: str | None) -> Glyphs:
    """The arrows and ticks when the terminal can show them; ASCII otherwise."""
    return UNICODE if (encoding or "").lower().replace("-", "").startswith("utf") else ASCII


def one_line(text: str, limit: int) -> str:
    """Whitespace folded to single spaces, cut with an ellipsis at `limit` characters."""
    line = " ".join(text.split())
    if limit > 0 and len(line) > limit:
        return line[: max(1, limit - 1)] + "…"
    return line


def _load(input_json: str) -> Any:
    try:
        return json.loads(input_json) if input_json else {}
    except ValueError:
        return None


def input_summary(tool: str, input_json: str, limit: int = 100) -> str:
    """What a call is about, in one line: a command, a path, a pattern, a skill."""
    data = _load(input_json)
    if not isinstance(data, dict):
        return one_line(input_json, limit)

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    line = ""
    if tool == "bash":
        line = text("command")
    elif tool == "read_file":
        line = text("path")
        offset, count = data.get("offset"), data.get("limit")
        if isinstance(offset, int) and isinstance(count, int):
            line += f" lines {offset}-{offset + count - 1}"
        elif isinstance(offset, int):
            line += f" from line {offset}"
    elif tool in ("write_file", "edit_file"):
        line = text("path")
    elif tool == "list_dir":
        line = text("path") or "."
    elif tool == "glob":
        line = text("pattern")
        if text("path"):
            line += f" in {text('path')}"
    elif tool == "grep":
        line = repr(text("pattern")) if text("pattern") else ""
        where = text("path") or text("glob")
        if where:
            line += f" in {where}"
    elif tool == "load_skill":
        line = text("name")
    if not line:
        # An unknown tool, or an input without the usual field: its arguments, compact.
        line = " ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in data.items()
        )
    return one_line(line, limit)


def fold_call(tool: str, input_json: str, width: int = 100, glyphs: Glyphs = UNICODE) -> str:
    """`▸ bash  git status`: one line per tool call."""
    head = f"{glyphs.call} {tool}"
    summary = input_summary(tool, input_json, max(10, width - len(head) - 2))
    return f"{head}  {summary}" if summary else head


def _count_lines(text: str) -> str:
    n = len(text.splitlines())
    return "1 line" if n == 1 else f"{n} lines"


def _bash_body(output: str) -> list[str]:
    """A bash result's own output lines, without the runner's closing `exit code N`."""
    lines = output.splitlines()
    if lines and (lines[-1].startswith("exit code ") or lines[-1].startswith("killed by signal")):
        lines = lines[:-1]
    if lines == ["(no output)"]:
        return []
    return lines


def _last_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if line.strip():
            return line
    return ""


def _duration(seconds: float) -> str:
    if seconds < 1:
        return ""
    if seconds < 60:
        return f", {seconds:.1f}s"
    return f", {int(seconds // 60)}m{int(seconds % 60):02d}s"


def fold_result(
    result: event_pb2.ToolResult, tool: str = "", width: int = 100, glyphs: Glyphs = UNICODE
) -> list[str]:
    """A tool's result in a line or two, indented under its call:

    ✓ exit 0, 12 lines          (bash)
    ✗ exit 2, 3 lines           (bash, failed: the last line of output under it)
      grep: nope: No such file
    ✓ wrote src/app.py (120 bytes)
    ✓ 42 lines                  (a longer output)
    ✗ denied by policy: deny: bash(rm:*)
    """
    limit = max(20, width - 4)
    output = result.output
    if result.HasField("exit_code"):
        code = result.exit_code
        failed = result.is_error or code != 0
        mark = glyphs.fail if failed else glyphs.ok
        status = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        body = _bash_body(output)
        size = _count_lines("\n".join(body)) if body else "no output"
        lines = [f"  {mark} {status}, {size}{_duration(result.duration_seconds)}"]
        last = _last_line(body)
        if failed and last:
            lines.append("    " + one_line(last, limit - 2))
        return lines
    text = output.strip()
    if result.is_error:
        if not text:
            return [f"  {glyphs.fail} failed"]
        # bash ends with the runner's note (timed out, ...); other tools say it first.
        line = _last_line(text.splitlines()) if tool == "bash" else text.splitlines()[0]
        return [f"  {glyphs.fail} {one_line(line, limit)}"]
    if not text:
        return [f"  {glyphs.ok} done"]
    if tool == "read_file":
        # The file's own text (numbered): its size says enough.
        return [f"  {glyphs.ok} {_count_lines(text)}{_duration(result.duration_seconds)}"]
    if len(text.splitlines()) == 1:
        return [f"  {glyphs.ok} {one_line(text, limit)}"]
    return [f"  {glyphs.ok} {_count_lines(text)}{_duration(result.duration_seconds)}"]


def decision_label(decision: int) -> str:
    """`DECISION_DENY` → `deny`."""
    try:
        name = event_pb2.Decision.Name(decision)  # type: ignore[arg-type]
    except ValueError:
        return str(decision)
    return name.removeprefix("DECISION_").lower()


def tokens(n: int) -> str:
    """`950`, `12.3k`, `1.2M`."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def clock(seconds: float) -> str:
    """`0:07`, `12:34`, `1:02:03`."""
    s = max(0, int(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Progress:
    """What the status line shows, updated from usage events."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""

    def update(self, usage: event_pb2.Usage) -> None:
        self.turns = usage.turns
        self.input_tokens = usage.input_tokens
        self.output_tokens = usage.output_tokens
        self.cost_usd = usage.cost_usd
        self.model = usage.model or self.model

    def take_result(self, result: Any) -> None:
        """The final totals from `finished.result` (they win over the last usage)."""
        if result.turns or result.input_tokens or result.output_tokens:
            self.turns = result.turns
            self.input_tokens = result.input_tokens
            self.output_tokens = result.output_tokens
            self.cost_usd = result.cost_usd


def status_line(progress: Progress, elapsed: float, state: str = "") -> str:
    """`turn 3 · 1.2k in / 340 out · $0.0123 · 0:42`."""
    parts = []
    if state:
        parts.append(state)
    parts.append(f"turn {progress.turns}" if progress.turns else "starting")
    parts.append(f"{tokens(progress.input_tokens)} in / {tokens(progress.output_tokens)} out")
    parts.append(f"${progress.cost_usd:.4f}")
    parts.append(clock(elapsed))
    return " · ".join(parts)


def summary_line(progress: Progress, elapsed: float, state: str) -> str:
    """The closing line: `succeeded · 3 turns · 300 in / 60 out tokens · $0.0014 · 0:02`."""
    turns = "1 turn" if progress.turns == 1 else f"{progress.turns} turns"
    parts = [
        state,
        turns,
        f"{tokens(progress.input_tokens)} in / {tokens(progress.output_tokens)} out tokens",
        f"${progress.cost_usd:.4f}",
        clock(elapsed),
    ]
    if progress.model:
        parts.append(progress.model)
    return " · ".join(parts)
