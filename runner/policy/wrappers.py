"""Unwrapping: the command a wrapper runs is the command to judge.

`timeout 5 env X=1 nice rm -rf /` runs `rm -rf /`; `bash -c "..."` and `eval` run a whole new
line, parsed and judged recursively by the caller. Every layer is kept, so a rule or a built-in
check can match the wrapper itself (`sudo ...`) as well as what it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.policy.shell_lexer import ShellSyntaxError, Word, lex

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "rbash", "fish"})
INTERPRETERS = frozenset({"python", "python3", "perl", "ruby", "node", "php"})
# Words that open or close a compound command; what follows them is the command to judge.
RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!"})
RESERVED |= frozenset({"{", "}", "esac", "coproc"})
# Variables that change what a command runs or loads: with one of them set, the command is no
# longer the one an allow rule approved (`GIT_EXTERNAL_DIFF=x git diff`, `PATH=. ls`).
DANGEROUS_ENV = re.compile(
    r"^(PATH|LD_\w+|DYLD_\w+|BASH_ENV|ENV|IFS|SHELLOPTS|BASHOPTS|PROMPT_COMMAND|PS4|GIT_\w+|"
    r"\w*PAGER|EDITOR|VISUAL|PYTHON\w*|NODE_OPTIONS|PERL5?\w*|RUBY\w*|LESSOPEN|LESSCLOSE|"
    r"BROWSER|HOME|XDG_CONFIG_HOME|\w*ASKPASS|\w*_COMMAND)$"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
# Layers beyond this are not unwrapped (`nice nice nice ...`); the line then asks.
MAX_LAYERS = 16


@dataclass
class Unwrapped:
    """What one simple command runs, seen through its wrappers."""

    views: list[tuple[Word, ...]] = field(default_factory=list)  # outermost first
    command: tuple[Word, ...] | None = None  # what allow rules judge; None: scripts decide
    env: list[str] = field(default_factory=list)  # variables assigned for the command
    unknown_args: bool = False  # xargs appends arguments read from stdin
    scripts: list[tuple[str, Word]] = field(default_factory=list)  # (how, line) to judge
    asks: list[str] = field(default_factory=list)  # why this cannot be judged
    reads_stdin: bool = False  # a shell or interpreter reading its program from stdin
    writes: list[Word] = field(default_factory=list)  # files the wrapper itself writes


# A handler gets the wrapper's arguments and returns the words it runs, SELF when the
# command is the wrapper itself (`command -v x`, `bash script.sh`), or DONE when what runs is
# wholly in `scripts` (`bash -c ...`).
SELF: list[Word] = []
DONE: list[Word] = []
Handler = Callable[[str, list[Word], Unwrapped], list[Word]]


def is_assignment(word: Word) -> bool:
    return bool(_ASSIGNMENT.match(word.raw or word.text))


def unwrap(words: tuple[Word, ...]) -> Unwrapped:
    result = Unwrapped()
    current = list(words)
    for _ in range(MAX_LAYERS):
        while current and (
            is_assignment(current[0]) or (not current[0].quoted and current[0].text in RESERVED)
        ):
            if is_assignment(current[0]):
                result.env.append(current[0].text.split("=", 1)[0].rstrip("+"))
            current = current[1:]
        if not current:
            result.command = None if result.views else ()
            return result
        view = tuple(current)
        result.views.append(view)
        name = view[0].text.rsplit("/", 1)[-1]
        handler = _HANDLERS.get(name) or (_shell if name in SHELLS else None)
        if handler is None:
            result.command = view
            return result
        inner = handler(name, current[1:], result)
        if inner is SELF:
            result.command = view
            return result
        if inner is DONE:
            return result
        current = inner
    result.asks.append("ask: too many nested wrappers to judge")
    return result


def _skip(args: list[Word], with_value: frozenset[str]) -> int:
    """Index of the first operand after options; `with_value` options take the next word."""
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--":
            return i + 1
        if not text.startswith("-") or text == "-":
            return i
        i += 2 if text in with_value else 1
    return i


def _options(with_value: str) -> Handler:
    values = frozenset(with_value.split())

    def handler(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
        rest = args[_skip(args, values) :]
        return rest or SELF

    return handler


def _env(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    i = 0
    split: list[Word] = []
    while i < len(args):
        text = args[i].text
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-":
            if text == "-":
                i += 1
                continue
            break
        if text in ("-S", "--split-string") and i + 1 < len(args):
            split.extend(_split_string(args[i + 1], result))
            i += 2
            continue
        if text.startswith(("-S", "--split-string=")):
            value = text.split("=", 1)[1] if text.startswith("--") else text[2:]
            split.extend(_split_string(Word(value, raw=value), result))
        i += 2 if text in ("-u", "-C", "--unset", "--chdir") else 1
    while i < len(args) and "=" in args[i].text and _ASSIGNMENT.match(args[i].text):
        result.env.append(args[i].text.split("=", 1)[0])
        i += 1
    rest = split + args[i:]
    return rest or SELF


def _split_string(word: Word, result: Unwrapped) -> list[Word]:
    """`env -S 'rm -rf /'` splits its string into words, roughly as a shell would."""
    try:
        tokens = lex(word.text)
    except ShellSyntaxError:
        result.asks.append(f"ask: env -S {word.text!r} cannot be parsed")
        return []
    words = [token for token in tokens if isinstance(token, Word)]
    if len(words) != len(tokens):
        result.asks.append(f"ask: env -S {word.text!r} cannot be judged")
    return words


def _timeout(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    rest = args[_skip(args, frozenset({"-s", "-k", "--signal", "--kill-after"})) :]
    return rest[1:] or SELF  # the first operand is the duration


def _time(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    values = frozenset({"-o", "-f", "--output", "--format"})
    i = _skip(args, values)
    for j, word in enumerate(args[:i]):
        if word.text in ("-o", "--output") and j + 1 < len(args):
            result.writes.append(args[j + 1])
    return args[i:] or SELF


def _command(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    if args and args[0].text in ("-v", "-V"):
        return SELF  # a lookup, not a run
    return args[_skip(args, frozenset()) :] or SELF


def _xargs(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    values = "-a -d -E -I -L -n -P -s --arg-file --delimiter --eof --replace --max-lines"
    values += " --max-args --max-procs --max-chars --process-slot-var"
    rest = args[_skip(args, frozenset(values.split())) :]
    result.unknown_args = True
    return rest or SELF


def _watch(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    values = frozenset({"-n", "--interval", "-q", "--equexit"})
    i = _skip(args, values)
    if any(word.text in ("-x", "--exec") for word in args[:i]):
        return args[i:] or SELF
    if i < len(args):
        # watch joins its arguments and hands them to `sh -c`.
        line = " ".join(word.text for word in args[i:])
        result.scripts.append(("watch", Word(line, raw=line)))
        return DONE
    return SELF


def _shell(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    command = stdin = False
    i = 0
    while i < len(args):
        text = args[i].text
        if text in ("--", "-"):
            i += 1
            break
        if text in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if text.startswith("--"):
            i += 1
            continue
        if text[:1] in ("-", "+") and len(text) > 1:
            command = command or (text[0] == "-" and "c" in text)
            stdin = stdin or (text[0] == "-" and "s" in text)
            i += 1
            continue
        break
    operands = args[i:]
    if command:
        if not operands:
            result.asks.append(f"ask: {name} -c without a command")
            return DONE
        result.scripts.append((f"{name} -c", operands[0]))
        return DONE
    result.reads_stdin = stdin or not operands
    return SELF


def _interpreter(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    code_options = {"-c", "-e", "-E", "-m", "-r", "-p", "-n"}
    has_code = any(word.text in code_options for word in args)
    operands = [word for word in args if not word.text.startswith("-") or word.text == "-"]
    result.reads_stdin = not has_code and (not operands or operands[0].text == "-")
    return SELF


def _eval(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    line = " ".join(word.text for word in args)
    result.scripts.append(("eval", Word(line, raw=line)))
    result.asks.append("ask: eval cannot be judged")
    return DONE


def _source(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    result.asks.append(f"ask: {name} runs a file that cannot be judged")
    return SELF


def _alias(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    for word in args:
        if "=" in word.text:
            value = word.text.split("=", 1)[1]
            result.scripts.append(("alias", Word(value, raw=value)))
            result.asks.append("ask: alias definitions cannot be judged")
    return DONE if result.scripts else SELF


def _trap(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    if args and not args[0].text.startswith("-"):
        result.scripts.append(("trap", args[0]))
        result.asks.append("ask: trap handlers cannot be judged")
        return DONE
    return SELF


def _busybox(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    return args or SELF


def _privileged(name: str, args: list[Word], result: Unwrapped) -> list[Word]:
    return SELF  # denied by the built-in list whatever it runs


_HANDLERS: dict[str, Handler] = {
    "env": _env,
    "timeout": _timeout,
    "nice": _options("-n --adjustment"),
    "nohup": _options(""),
    "setsid": _options(""),
    "chronic": _options(""),
    "unbuffer": _options(""),
    "stdbuf": _options("-i -o -e --input --output --error"),
    "ionice": _options("-c -n --class --classdata"),
    "time": _time,
    "command": _command,
    "builtin": _options(""),
    "exec": _options("-a"),
    "xargs": _xargs,
    "watch": _watch,
    "busybox": _busybox,
    "eval": _eval,
    "source": _source,
    ".": _source,
    "alias": _alias,
    "trap": _trap,
    **{name: _interpreter for name in INTERPRETERS},
    **{name: _privileged for name in ("sudo", "doas", "su", "pkexec", "runuser")},
}
