"""Completion notifications: a webhook and a desktop notification command.

When a task ends, the daemon hands a Completion to the Notifier, which delivers it in
the background. A notification that cannot be delivered is logged as a warning; it
never fails, delays or changes the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import string
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

END_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
PLACEHOLDERS = ("task_id", "state", "summary", "error", "exit_code")
# A desktop notification command that runs longer than this is killed.
COMMAND_TIMEOUT_SECONDS = 10.0
# Longest text put into one argument of the command (a notification is a glance).
MAX_ARGUMENT_CHARS = 2000
# Waits between webhook attempts: 0.25 s, 0.5 s, 1 s, ... at most 2 s.
RETRY_BACKOFF_SECONDS = 0.25
RETRY_BACKOFF_MAX_SECONDS = 2.0
MAX_WEBHOOK_TIMEOUT_SECONDS = 300.0
MAX_WEBHOOK_RETRIES = 10


@dataclass(frozen=True)
class NotifyConfig:
    """The [notify] table of config.toml."""

    # http(s) URL that receives a POST of each completion; "" turns the webhook off.
    webhook_url: str = ""
    # Per attempt.
    webhook_timeout_seconds: float = 5.0
    # Extra tries on a connection error or a 5xx answer, with a short backoff.
    webhook_retries: int = 2
    # argv of a desktop notification command, run without a shell; () turns it off.
    # Each argument may hold {task_id} {state} {summary} {error} {exit_code}.
    command: tuple[str, ...] = ()
    # Which end states notify.
    on_states: tuple[str, ...] = END_STATES

    def validate(self) -> None:
        """Raises ValueError naming the key, the value and what is allowed."""
        url = self.webhook_url
        if not isinstance(url, str):
            raise ValueError(f"notify.webhook_url: {url!r} is not a string; use an http(s) URL")
        if url and not _is_http_url(url):
            raise ValueError(
                f"notify.webhook_url: {url!r} is not an http(s) URL; use one such as "
                '"https://example.com/hook", or "" to turn the webhook off'
            )
        timeout = self.webhook_timeout_seconds
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= MAX_WEBHOOK_TIMEOUT_SECONDS
        ):
            raise ValueError(
                f"notify.webhook_timeout_seconds: {timeout!r} is not allowed; use seconds, "
                f"more than 0 and at most {MAX_WEBHOOK_TIMEOUT_SECONDS:g}"
            )
        retries = self.webhook_retries
        if (
            isinstance(retries, bool)
            or not isinstance(retries, int)
            or not 0 <= retries <= MAX_WEBHOOK_RETRIES
        ):
            raise ValueError(
                f"notify.webhook_retries: {retries!r} is not allowed; use a whole number "
                f"from 0 to {MAX_WEBHOOK_RETRIES}"
            )
        self._validate_command()
        states = self.on_states
        if isinstance(states, str) or not isinstance(states, (tuple, list)):
            raise ValueError(
                f"notify.on_states: {states!r} is not a list; use a list such as "
                '["FAILED", "TIMED_OUT"]'
            )
        allowed = ", ".join(f'"{s}"' for s in END_STATES)
        if not states:
            raise ValueError(
                f"notify.on_states: the list is empty, so nothing would notify; name one or "
                f'more of {allowed} (to turn notifications off, set webhook_url = "" and '
                "command = [])"
            )
        for state in states:
            if state not in END_STATES:
                raise ValueError(f"notify.on_states: {state!r} is not an end state; use {allowed}")

    def _validate_command(self) -> None:
        command: object = self.command
        if command in ("", (), []):
            return
        if isinstance(command, str) or not isinstance(command, (tuple, list)):
            raise ValueError(
                f"notify.command: {command!r} is not a list of arguments; use one such as "
                '["notify-send", "stigmer: {task_id} {state}", "{summary}"] (no shell is '
                "used), or [] to turn it off"
            )
        for index, argument in enumerate(command):
            if not isinstance(argument, str) or "\x00" in argument:
                raise ValueError(
                    f"notify.command[{index}]: {argument!r} is not allowed; use text "
                    "without NUL characters"
                )
            if index == 0 and not argument.strip():
                raise ValueError(
                    'notify.command[0]: the program is empty; name a program such as "notify-send"'
                )
            try:
                _fields(argument)
            except ValueError as exc:
                raise ValueError(
                    f"notify.command[{index}]: {argument!r}: {exc}; allowed placeholders: "
                    + " ".join(f"{{{name}}}" for name in PLACEHOLDERS)
                    + " (write {{ and }} for literal braces)"
                ) from None
        if "{" in command[0] and _fields(command[0]):
            raise ValueError(
                f"notify.command[0]: {command[0]!r}: the program cannot hold a placeholder; "
                "put placeholders in the later arguments"
            )


@dataclass(frozen=True)
class Completion:
    """What a notification says about a task that reached an end state."""

    task_id: str
    state: str
    summary: str
    error: str
    exit_code: int | None
    kind: str  # "command" or "agent"
    ended_at: float  # unix time
    cost_usd: float = 0.0


def fill(argv: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """argv with each argument's placeholders replaced: one argument stays one argument,
    whatever the values hold (no shell ever sees them)."""
    out: list[str] = []
    for argument in argv:
        parts: list[str] = []
        for literal, name, _spec, _conversion in string.Formatter().parse(argument):
            parts.append(literal)
            if name is not None:
                parts.append(values.get(name, ""))
        out.append("".join(parts).replace("\x00", ""))
    return out


class Notifier:
    def __init__(self, config: NotifyConfig, redact: Callable[[str], str]) -> None:
        self._config = config
        self._redact = redact
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = False
        self._missing_program_logged = False

    def notify(self, completion: Completion) -> None:
        """Schedules the deliveries in the background and returns at once; never raises."""
        try:
            self._schedule(completion)
        except Exception:
            log.warning("notify: could not schedule the notifications", exc_info=True)

    # The timeout is a grace period for what is under way, not a bound on this call.
    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Waits up to `timeout` for the deliveries under way, then cancels the rest."""
        self._closed = True
        pending = set(self._pending)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
            log.warning("notify: %d notification(s) cancelled at shutdown", len(late))

    # -- scheduling

    def _schedule(self, completion: Completion) -> None:
        config = self._config
        if completion.state not in config.on_states:
            return
        if self._closed:
            log.debug("notify: closed; not notifying of %s", completion.task_id)
            return
        if config.webhook_url:
            self._spawn(self._webhook(completion), f"notify-webhook-{completion.task_id}")
        if config.command:
            self._spawn(self._command(completion), f"notify-command-{completion.task_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()
            log.warning("notify: no event loop is running; notification dropped")
            return
        task = loop.create_task(self._guarded(work), name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("notify: a notification failed unexpectedly", exc_info=True)

    # -- webhook

    def payload(self, completion: Completion) -> dict[str, object]:
        """The webhook's JSON body, every string redacted."""
        r = self._redact
        return {
            "task_id": r(completion.task_id),
            "state": r(completion.state),
            "summary": r(completion.summary),
            "error": r(completion.error),
            "exit_code": completion.exit_code,
            "kind": r(completion.kind),
            "ended_at": completion.ended_at,
            "cost_usd": completion.cost_usd,
        }

    async def _webhook(self, completion: Completion) -> None:
        config = self._config
        url = config.webhook_url
        body = json.dumps(self.payload(completion)).encode()
        where = _origin(url)
        attempts = 1 + max(0, config.webhook_retries)
        problem = ""
        for attempt in range(attempts):
            if attempt:
                delay = min(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1), RETRY_BACKOFF_MAX_SECONDS)
                await asyncio.sleep(delay)
            try:
                status = await asyncio.wait_for(
                    asyncio.to_thread(_post, url, body, config.webhook_timeout_seconds),
                    # The socket timeout bounds each read; this bounds the whole attempt.
                    timeout=config.webhook_timeout_seconds * 2,
                )
            except (TimeoutError, OSError) as exc:
                problem = _describe(exc)
                continue
            if 200 <= status < 300:
                log.debug(
                    "notify: webhook %s took %s (%d)",
                    where,
                    self._redact(completion.task_id),
                    status,
                )
                return
            problem = f"answered HTTP {status}"
            if status < 500:
                break  # A 4xx or a redirect will not change on a retry.
        log.warning(
            "notify: webhook %s for task %s not delivered after %d attempt(s): %s",
            where,
            self._redact(completion.task_id),
            attempt + 1,
            self._redact(problem),
        )

    # -- desktop notification command

    def argv(self, completion: Completion) -> list[str]:
        """The notification command's argv with the placeholders filled (redacted)."""
        r = self._redact
        values = {
            "task_id": r(completion.task_id),
            "state": r(completion.state),
            "summary": _clip(r(completion.summary)),
            "error": _clip(r(completion.error)),
            "exit_code": "" if completion.exit_code is None else str(completion.exit_code),
        }
        return fill(tuple(self._config.command), values)

    async def _command(self, completion: Completion) -> None:
        argv = self.argv(completion)
        program = argv[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                # Its own process group, so a timeout kills whatever it started too.
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            if not self._missing_program_logged:
                self._missing_program_logged = True
                log.warning(
                    "notify: cannot run the notification command %r: %s; check notify.command "
                    "(this is logged once)",
                    program,
                    exc.strerror or exc,
                )
            return
        except OSError as exc:
            log.warning("notify: cannot run the notification command %r: %s", program, exc)
            return
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            log.warning(
                "notify: the notification command %r ran longer than %gs and was killed",
                program,
                COMMAND_TIMEOUT_SECONDS,
            )
            return
        except asyncio.CancelledError:
            # Shutdown: the command dies with its process group and is reaped here.
            _kill_group(proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
            raise
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            first = lines[0][:300] if lines else "(no error output)"
            log.warning(
                "notify: the notification command %r for task %s exited with %s: %s",
                program,
                self._redact(completion.task_id),
                proc.returncode,
                self._redact(first),
            )


# -- helpers


def _is_http_url(url: str) -> bool:
    if any(c.isspace() for c in url) or "\x00" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: its path and query may hold a token, so logs show
    only this."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(bad URL)"
    return f"{parts.scheme}://{host}{port}"


def _fields(argument: str) -> list[str]:
    """The placeholder names in one argument; ValueError for a malformed or unknown one."""
    names: list[str] = []
    for _literal, name, spec, conversion in string.Formatter().parse(argument):
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} cannot have a format or conversion")
        names.append(name)
    return names


def _clip(text: str) -> str:
    if len(text) <= MAX_ARGUMENT_CHARS:
        return text
    return text[: MAX_ARGUMENT_CHARS - 1] + "…"


_version: str | None = None


def _user_agent() -> str:
    global _version
    if _version is None:
        try:
            _version = version("stigmer-local")
        except PackageNotFoundError:
            _version = "0+unknown"
    return f"stigmer-local/{_version}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: not followed, reported."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, body: bytes, timeout: float) -> int:
    """POSTs `body` and returns the HTTP status (runs in a thread). Raises OSError when
    no answer comes (URLError, a refused connection, a timeout)."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        # A proxy from the environment would not reach this machine's own servers.
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "user-agent": _user_agent()},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        # The answer's body is never read or logged: it may echo what it was sent.
        code: int = exc.code
        exc.close()
        return code
    except http.client.HTTPException as exc:
        # A garbled answer (a bad status line, a closed connection) counts as no answer.
        raise ConnectionError(f"bad HTTP answer ({type(exc).__name__})") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _describe(reason)
        return str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
