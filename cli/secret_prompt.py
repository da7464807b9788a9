"""Asking for a secret: masked input on a terminal, a format check, and `--verify`.

prompt_toolkit and urllib are imported here, and this module only by the
commands that ask (`local start`, `secrets set`), so other commands never pay
for them. The prompt reads and writes through an injectable prompt_toolkit
input and output, so tests drive it with a pipe and a dummy output.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli.errors import CliError, ExitCode
from cli.output import say
from shared.secretstore import PROVIDER_KEY, format_warning

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

MAX_TRIES = 3
DEFAULT_BASE_URL = "https://api.anthropic.com"
VERIFY_TIMEOUT_SECONDS = 5.0
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class PromptIO:
    """Where the prompt reads keys and draws itself (None: the terminal, drawn on stderr)."""

    input: Input | None = None
    output: Output | None = None


def is_terminal() -> bool:
    """True when we may ask: a person can type on stdin and see stderr."""
    return sys.stdin.isatty() and sys.stderr.isatty()


async def read_masked(name: str, io: PromptIO) -> str:
    """One masked entry. Raises KeyboardInterrupt (Ctrl-C) or EOFError (Ctrl-D)."""
    from prompt_toolkit import PromptSession

    output = io.output
    if output is None:
        from prompt_toolkit.output import create_output
        from prompt_toolkit.output.vt100 import Vt100_Output

        # stdout stays for data (`local start --json`); the prompt is a message.
        output = create_output(stdout=sys.stderr)
        if isinstance(output, Vt100_Output):
            # One line needs no cursor-position reports (and some terminals never answer).
            output.enable_cpr = False
    session: PromptSession[str] = PromptSession(input=io.input, output=output)
    return await session.prompt_async(f"{name}: ", is_password=True)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    # "HTTP 401", or why it could not be checked; never the key.
    detail: str = ""


def base_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL


def check_key(value: str, url: str, timeout: float = VERIFY_TIMEOUT_SECONDS) -> Verification:
    """One cheap authenticated call (list one model): does the API take this key?"""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url.rstrip("/") + "/v1/models?limit=1",
        headers={"x-api-key": value, "anthropic-version": ANTHROPIC_VERSION},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as e:
        status = e.code
    except urllib.error.URLError as e:
        return Verification(Verdict.UNKNOWN, str(e.reason))
    except TimeoutError:
        return Verification(Verdict.UNKNOWN, f"no answer within {timeout:g} s")
    except (OSError, ValueError) as e:
        # http.client puts a bad header's value in its message: name the kind only.
        return Verification(Verdict.UNKNOWN, type(e).__name__)
    if 200 <= status < 300:
        return Verification(Verdict.ACCEPTED, f"HTTP {status}")
    if status in (401, 403):
        return Verification(Verdict.REFUSED, f"HTTP {status}")
    return Verification(Verdict.UNKNOWN, f"HTTP {status}")


async def verify(name: str, value: str) -> bool:
    """Checks the key when we know how (the provider key); False when the API refused it.

    Says what it found on stderr; an unreachable API is a warning, not a refusal."""
    if name != PROVIDER_KEY:
        say(f"note: --verify checks only {PROVIDER_KEY}; {name} is not checked", style="yellow")
        return True
    result = await asyncio.to_thread(check_key, value, base_url())
    if result.verdict is Verdict.REFUSED:
        say(f"the API refused this key ({result.detail})", style="red")
        return False
    if result.verdict is Verdict.UNKNOWN:
        say(
            f"warning: could not verify {name} ({result.detail}) (offline?); storing it anyway",
            style="yellow",
        )
    return True


def warn_format(name: str, value: str) -> None:
    warning = format_warning(name, value)
    if warning:
        say(f"warning: {warning}", style="yellow")


async def ask(
    name: str, *, io: PromptIO | None = None, check: bool = False, tries: int = MAX_TRIES
) -> str:
    """Asks for `name`'s value with masked input until a usable one is entered.

    An empty entry, or a key the API refuses (`check`), asks again, `tries`
    times in all (then exit code 2). Ctrl-C or Ctrl-D: exit code 130. Nothing
    is stored here."""
    io = io or PromptIO()
    for _ in range(tries):
        try:
            value = await read_masked(name, io)
        except (KeyboardInterrupt, EOFError):
            raise CliError(f"interrupted: {name} not stored", ExitCode.INTERRUPTED) from None
        if not value:
            say(f"{name} is empty; type or paste its value (it is not shown)")
            continue
        warn_format(name, value)
        if check and not await verify(name, value):
            continue
        return value
    raise CliError(f"error: no usable {name} after {tries} tries; nothing stored", ExitCode.USAGE)
