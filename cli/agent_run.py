"""Staying attached to an agent task: its text as it streams, each tool call folded to a
line, approvals asked inline, and a status line at the bottom of the terminal.

Output rules: the assistant's text goes to stdout (it is the run's product); tool
calls, results, approvals, the status line and the summary go to stderr. Off a
terminal nothing is redrawn: no status line, one summary line at the end, and an
approval request is printed with the command that answers it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from datetime import UTC, datetime

from cli.agent_view import (
    Glyphs,
    Progress,
    fold_call,
    fold_result,
    glyphs_for,
    one_line,
    status_line,
    summary_line,
)
from cli.client import DaemonClient
from cli.errors import CliError, ExitCode
from cli.outcome import agent_outcome
from cli.output import print_json_line, say, stderr_console, to_dict
from cli.views import state_label
from cli.watch import follow_task
from protos import event_pb2, task_pb2, task_service_pb2

# Seconds between redraws of the status line's clock.
TICK_SECONDS = 1.0

AnswerReader = Callable[[str], Awaitable[str]]


def answered_by() -> str:
    """`cli:alice`: who answered, for the audit."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def approve_command(task_id: str, approval_id: str) -> str:
    return f"stigmer task approve {task_id} {approval_id}"


def parse_answer(text: str) -> tuple[bool, bool] | None:
    """`y`/`yes` → (approve, not always); `a`/`always` → (approve, always); `n`/`no` →
    (deny, -); anything else None (ask again)."""
    word = text.strip().lower()
    if word in ("y", "yes"):
        return True, False
    if word in ("a", "always"):
        return True, True
    if word in ("n", "no"):
        return False, False
    return None


async def read_answer(message: str) -> str:
    """One line typed on the terminal, the prompt drawn on stderr. Ctrl-C raises
    KeyboardInterrupt and Ctrl-D EOFError, as with input()."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.output import create_output
    from prompt_toolkit.output.vt100 import Vt100_Output

    output = create_output(stdout=sys.stderr)
    if isinstance(output, Vt100_Output):
        output.enable_cpr = False
    session: PromptSession[str] = PromptSession(output=output)
    # Our own SIGINT handler stays: in the prompt, Ctrl-C is a key (KeyboardInterrupt).
    return await session.prompt_async(message, handle_sigint=False)


class Screen:
    """stdout for the text, stderr for the rest, and the status line kept at the bottom.

    While a prompt is open, messages wait and come out when it closes.
    """

    def __init__(self, live: bool) -> None:
        self.live = live
        self.stdout_tty = sys.stdout.isatty()
        self.mid_line = False
        self.paused = False
        self._status = ""
        self._shown = False
        self._held: list[tuple[str, str | None]] = []
        self._held_text: list[str] = []
        self._dim = live and stderr_console().color_system is not None

    # -- the text --

    def text(self, text: str) -> None:
        if not text:
            return
        if self.paused:
            self._held_text.append(text)
            return
        # The status line would otherwise end up inside the text on a shared terminal.
        if self.stdout_tty:
            self._clear_status()
        sys.stdout.write(text)
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")
        self._draw_status()

    def end_text(self) -> None:
        """Each assistant message ends its line."""
        if self.paused:
            self._held_text.append("\n")
            return
        if self.mid_line:
            self.text("\n")

    # -- messages on stderr --

    def message(self, line: str, style: str | None = None) -> None:
        if self.paused:
            self._held.append((line, style))
            return
        self._clear_status()
        if self.mid_line and self.stdout_tty:
            # Tool lines start on a line of their own when both share the terminal.
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False
        say(line, style=style)
        self._draw_status()

    # -- the status line --

    def status(self, text: str) -> None:
        self._status = text
        self._draw_status()

    def _draw_status(self) -> None:
        if not self.live or self.paused or not self._status:
            return
        if self.mid_line and self.stdout_tty:
            return  # back when the text's line ends
        width = shutil.get_terminal_size((80, 24)).columns
        line = one_line(self._status, max(10, width - 1))
        if self._dim:
            line = f"\x1b[2m{line}\x1b[0m"
        sys.stderr.write("\r\x1b[2K" + line)
        sys.stderr.flush()
        self._shown = True

    def _clear_status(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self._shown = False

    def pause(self) -> None:
        self._clear_status()
        if self.mid_line and self.stdout_tty:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        held, self._held = self._held, []
        held_text, self._held_text = self._held_text, []
        if held_text:
            self.text("".join(held_text))
        for line, style in held:
            self.message(line, style)
        self._draw_status()

    def close(self) -> None:
        """Before the last lines: the status line goes, the text's line ends."""
        if self.paused:
            self.resume()
        self._status = ""
        self._clear_status()
        if self.mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False


def _clock_time(ts: object) -> str:
    seconds = getattr(ts, "seconds", 0) + getattr(ts, "nanos", 0) / 1e9
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone().strftime("%H:%M:%S")


class AgentView:
    """Turns a task's events into what the user sees, and asks approvals."""

    def __init__(
        self,
        client: DaemonClient,
        task_id: str,
        screen: Screen,
        *,
        interactive: bool,
        on_interrupt: Callable[[], None],
        reader: AnswerReader = read_answer,
        glyphs: Glyphs | None = None,
    ) -> None:
        self.client = client
        self.task_id = task_id
        self.screen = screen
        self.interactive = interactive
        self.on_interrupt = on_interrupt
        self.reader = reader
        self.glyphs = glyphs or glyphs_for(getattr(sys.stderr, "encoding", None))
        self.progress = Progress()
        self.started = time.monotonic()
        self._tools: dict[str, str] = {}
        # Calls whose refusal is already on screen (their error result is not repeated).
        self._refused: set[str] = set()
        self._approval_calls: dict[str, str] = {}
        self._prompts: dict[str, asyncio.Task[None]] = {}
        self._prompt_lock = asyncio.Lock()
        self._streamed = False

    @property
    def width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def refresh(self) -> None:
        self.screen.status(status_line(self.progress, self.elapsed()))

    def handle(self, event: event_pb2.Event) -> None:
        kind = event.WhichOneof("payload")
        g = self.glyphs
        if kind == "text_delta":
            self._streamed = True
            self.screen.text(event.text_delta.text)
        elif kind == "assistant_message":
            if not self._streamed:
                self.screen.text(event.assistant_message.text)
            self._streamed = False
            self.screen.end_text()
        elif kind == "tool_call":
            call = event.tool_call
            self._tools[call.call_id] = call.tool
            self.screen.message(fold_call(call.tool, call.input_json, self.width, g), "bold")
        elif kind == "policy_decision":
            d = event.policy_decision
            if d.decision == event_pb2.DECISION_DENY:
                self._refused.add(d.call_id)
                self.screen.message(f"  {g.fail} denied by policy: {d.rule}", "red")
        elif kind == "approval_requested":
            self._approval_requested(event.approval_requested)
        elif kind == "approval_resolved":
            self._approval_resolved(event.approval_resolved)
        elif kind == "tool_result":
            r = event.tool_result
            if r.call_id in self._refused:
                return
            lines = fold_result(r, self._tools.get(r.call_id, ""), self.width, g)
            failed = lines[0].lstrip().startswith(g.fail)
            self.screen.message(lines[0], "red" if failed else "green")
            for line in lines[1:]:
                self.screen.message(line, "dim")
        elif kind == "skills_chosen":
            chosen = event.skills_chosen
            if chosen.names:
                self.screen.message(f"skills: {', '.join(chosen.names)}", "dim")
            for left in chosen.left_out:
                self.screen.message(f"  skill left out: {left}", "yellow")
        elif kind == "usage":
            self.progress.update(event.usage)
            self.refresh()
        elif kind == "retrying":
            r2 = event.retrying
            self.screen.message(
                f"stigmer: attempt {r2.failed_attempt} failed ({r2.reason}); retrying", "yellow"
            )
        elif kind == "secret_required":
            s = event.secret_required
            self.screen.message(
                f"stigmer: waiting for the secret {s.name} (needed by {s.needed_by}); "
                f"set it with `stigmer secrets set {s.name}`",
                "yellow",
            )
        elif kind == "log":
            stream = "stderr" if event.log.stream == event_pb2.LOG_STREAM_STDERR else "stdout"
            data = event.log.data.decode("utf-8", "replace")
            if stream == "stdout":
                self.screen.text(data)
            else:
                self.screen.message(data.rstrip("\n"))

    # -- approvals --

    def _approval_requested(self, req: event_pb2.ApprovalRequested) -> None:
        self._approval_calls[req.approval_id] = req.call_id
        deadline = _clock_time(req.deadline)
        by = f" by {deadline}" if deadline else ""
        ask = self._ask if self.interactive else self._announce
        job = asyncio.get_running_loop().create_task(ask(req, by))
        self._prompts[req.approval_id] = job
        job.add_done_callback(lambda _: self._prompts.pop(req.approval_id, None))

    async def _call_seen(self, call_id: str) -> None:
        """The request can overtake its own tool_call event (the runner asks directly
        while its events are still on their way): the call's line comes first."""
        for _ in range(25):
            if call_id in self._tools:
                return
            await asyncio.sleep(0.02)

    async def _announce(self, req: event_pb2.ApprovalRequested, by: str) -> None:
        """Off a terminal: the request, and the command that answers it."""
        await self._call_seen(req.call_id)
        self.screen.message(f"{self.glyphs.ask} approval needed: {req.summary}", "yellow")
        self.screen.message(
            f"  answer{by} with: {approve_command(self.task_id, req.approval_id)}"
            " (add --deny to refuse)",
            "yellow",
        )

    async def _ask(self, req: event_pb2.ApprovalRequested, by: str) -> None:
        g = self.glyphs
        await self._call_seen(req.call_id)
        async with self._prompt_lock:
            self.screen.pause()
            try:
                say(f"{g.ask} approval needed: {req.summary}", style="yellow")
                say(
                    f"  (answer here{by}, or with "
                    f"`{approve_command(self.task_id, req.approval_id)} [--deny]`)",
                    style="dim",
                )
                answer: tuple[bool, bool] | None = None
                while answer is None:
                    try:
                        text = await self.reader("approve? [y]es / [n]o / [a]lways: ")
                    except EOFError:
                        answer = (False, False)
                        break
                    answer = parse_answer(text)
            except KeyboardInterrupt:
                self.on_interrupt()
                return
            finally:
                self.screen.resume()
        assert answer is not None
        approve, always = answer
        request = task_service_pb2.ApproveActionRequest(
            task_id=self.task_id,
            approval_id=req.approval_id,
            approve=approve,
            always=always,
            reason="" if approve else "refused in `stigmer run`",
            answered_by=answered_by(),
        )
        try:
            await self.client.unary(self.client.tasks.ApproveAction, request)
        except CliError as e:
            # Answered elsewhere, or timed out while we asked: its event says how.
            self.screen.message(f"stigmer: {e.message.removeprefix('error: ')}", "yellow")

    def _approval_resolved(self, res: event_pb2.ApprovalResolved) -> None:
        prompt = self._prompts.pop(res.approval_id, None)
        if prompt is not None and not prompt.done() and self.interactive:
            # Answered elsewhere (or timed out): the question is moot.
            prompt.cancel()
        g = self.glyphs
        who = res.resolved_by or "nobody"
        if res.approved:
            always = " (always, for calls like it)" if res.always else ""
            self.screen.message(f"  {g.ok} approved by {who}{always}", "green")
            return
        call_id = self._approval_calls.get(res.approval_id, "")
        if call_id:
            self._refused.add(call_id)
        if who == "timeout":
            self.screen.message(f"  {g.fail} not answered in time: denied", "red")
        else:
            reason = f": {res.reason}" if res.reason else ""
            self.screen.message(f"  {g.fail} denied by {who}{reason}", "red")

    async def close(self) -> None:
        for job in list(self._prompts.values()):
            job.cancel()
        for job in list(self._prompts.values()):
            with suppress(asyncio.CancelledError, Exception):
                await job


async def attach_agent(client: DaemonClient, task: task_pb2.Task, as_json: bool) -> int:
    """Follows an agent task to its end; Ctrl-C cancels it, a second one stops waiting.

    Exit codes: 0 succeeded, 1 failed, 124 timed out, 130 cancelled or interrupted."""
    from cli.secret_prompt import is_terminal

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted = False
    pending: set[asyncio.Task[None]] = set()
    term_ok = os.environ.get("TERM", "") != "dumb"
    screen = Screen(live=not as_json and sys.stderr.isatty() and term_ok)

    async def cancel() -> None:
        try:
            await client.unary(
                client.tasks.CancelTask,
                task_service_pb2.CancelTaskRequest(
                    task_id=task.id, reason="interrupted (Ctrl-C) in `stigmer run`"
                ),
            )
        except CliError as e:
            screen.message(f"stigmer: could not cancel {task.id}: {e.message}")

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            if main is not None:
                main.cancel()
            return
        interrupted = True
        screen.message(f"stigmer: cancelling task {task.id} (press Ctrl-C again to stop waiting)")
        job = loop.create_task(cancel())
        pending.add(job)
        job.add_done_callback(pending.discard)

    view = AgentView(
        client,
        task.id,
        screen,
        interactive=not as_json and is_terminal(),
        on_interrupt=on_interrupt,
    )

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            view.refresh()

    ticker = loop.create_task(tick()) if screen.live else None
    if screen.live:
        view.refresh()
    finished: event_pb2.Finished | None = None
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        events = follow_task(client, task.id)
        async with aclosing(events):
            async for event in events:
                if event.HasField("finished"):
                    finished = event.finished
                if as_json:
                    print_json_line(to_dict(event))
                    if event.HasField("approval_requested"):
                        a = event.approval_requested
                        say(
                            f"stigmer: approval needed: {a.summary}; answer with "
                            f"`{approve_command(task.id, a.approval_id)} [--deny]`"
                        )
                    continue
                view.handle(event)
    except asyncio.CancelledError:
        screen.close()
        say(f"stigmer: stopped waiting; the daemon goes on cancelling task {task.id}")
        return ExitCode.INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if ticker is not None:
            ticker.cancel()
        await view.close()
        screen.close()
    if finished is None:
        raise CliError(f"error: the event stream of {task.id} ended before the task finished")
    if not as_json:
        view.progress.take_result(finished.result)
        summary = summary_line(view.progress, view.elapsed(), state_label(finished.state))
        say(f"stigmer: {summary}", style="dim")
    outcome = agent_outcome(task.id, finished.state, finished.result)
    if outcome.message:
        say(f"stigmer: {outcome.message}")
    return ExitCode.INTERRUPTED if interrupted else outcome.exit_code
