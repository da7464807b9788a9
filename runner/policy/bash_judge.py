"""Judging a bash command line: every part, every wrapper layer, every nested line.

A line is split into pipelines and simple commands; each simple command is unwrapped and goes
through the whole order on its own (built-in deny and deny rules, ask rules, allow rules and
pre-approvals, the level), and the line gets the strictest verdict of its parts. What cannot be
judged (substitutions, eval, here-documents, a parse error) asks, unless something in it is
denied. Lines run by other lines (`bash -c`, `eval`, `$(...)`, `find -exec`) are judged the
same way, a bounded number of levels deep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.policy.allowlist import allow_listed
from runner.policy.builtin_deny import (
    DOWNLOADERS,
    check_command,
    check_find,
    check_line,
    check_write_target,
    is_harmless_device,
    name_of,
)
from runner.policy.rules import Rule
from runner.policy.shell_lexer import ARITHMETIC, Redirect, Substitution, Word
from runner.policy.shell_parser import Pipeline, Simple, parse
from runner.policy.targets import Cwd, change_dir
from runner.policy.verdicts import Decision, Level, Verdict, allow, ask, deny, strictest
from runner.policy.wrappers import DANGEROUS_ENV, INTERPRETERS, SHELLS, Unwrapped, unwrap

# Nesting beyond this (`bash -c "bash -c \"...\""`) is not followed; the line asks instead.
MAX_DEPTH = 6
_OUTPUT_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_CODE_RUNNERS = SHELLS | INTERPRETERS | {"eval", "source", "."}


@dataclass(frozen=True)
class Context:
    level: Level
    deny: tuple[Rule, ...]  # bash rules only, here and below
    ask: tuple[Rule, ...]
    allow: tuple[Rule, ...]
    pre_approved: tuple[Rule, ...]
    denylist: tuple[str, ...]  # the task's denylisted command prefixes, normalized


def judge_bash(line: str, ctx: Context) -> Decision:
    judge = _Judge(ctx)
    decision = judge.line(line, 0)
    if decision.verdict is not Verdict.DENY and not judge.ask_rule_hit:
        # An exact whole-line rule (an "always" approval of this very line) allows what its
        # parts alone could not, such as a substitution the user has read; never a deny.
        for rule, label in judge.granting():
            if rule.matches_line(line) and ctx.level is not Level.STUDENT:
                return allow(f"{label}: {rule.source}")
    if ctx.level is Level.STUDENT and decision.verdict is not Verdict.DENY:
        return deny("level STUDENT: bash is not a read-only tool")
    return decision


class _Judge:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cwd: Cwd = ""
        self.ask_rule_hit = False

    def granting(self) -> list[tuple[Rule, str]]:
        return [(rule, "allow") for rule in self.ctx.allow] + [
            (rule, "pre-approved") for rule in self.ctx.pre_approved
        ]

    # -- lines and pipelines --------------------------------------------------

    def line(self, src: str, depth: int) -> Decision:
        if depth > MAX_DEPTH:
            return ask("ask: commands nested too deeply to judge")
        found: list[Decision] = []
        bomb = check_line(src)
        if bomb:
            found.append(bomb)
        found.extend(deny(f"deny: {r.source}") for r in self.ctx.deny if r.matches_line(src))
        for rule in self.ctx.ask:
            if rule.matches_line(src):
                self.ask_rule_hit = True
                found.append(ask(f"ask: {rule.source}"))
        script = parse(src)
        if script.error:
            found.append(ask(f"ask: the command cannot be parsed ({script.error})"))
        found.extend(ask(f"ask: {note} cannot be judged") for note in script.notes)
        for pipeline in script.pipelines:
            found.extend(self.pipeline(pipeline, depth))
        return strictest(found) or allow("nothing to run")

    def pipeline(self, pipeline: Pipeline, depth: int) -> list[Decision]:
        found: list[Decision] = []
        downloaded = False
        for index, simple in enumerate(pipeline):
            upstream = pipeline[index - 1] if index else None
            unwrapped = unwrap(simple.words)
            found.append(self.simple(simple, unwrapped, depth, upstream, downloaded))
            if unwrapped.command and name_of(unwrapped.command[0]) in DOWNLOADERS:
                downloaded = True
        return found

    # -- one simple command -----------------------------------------------------

    def simple(
        self,
        simple: Simple,
        unwrapped: Unwrapped,
        depth: int,
        upstream: Simple | None = None,
        downloaded: bool = False,
    ) -> Decision:
        found: list[Decision] = []
        command = unwrapped.command
        if command is not None and unwrapped.unknown_args and upstream is not None:
            produced = _literal_output(upstream)
            if produced is not None:
                # `echo / | xargs rm -rf` is `rm -rf /`: the arguments are known after all.
                command = command + tuple(Word(text) for text in produced.split())
                unwrapped.views[-1] = command
                unwrapped.unknown_args = False
        consumer = name_of(unwrapped.views[-1][0]) if unwrapped.views else ""

        # Substitutions run first, wherever they are; each is a line of its own.
        words = list(simple.words) + [redirect.target for redirect in simple.redirects]
        subs = [sub for word in words for sub in word.subs]
        subs += [sub for redirect in simple.redirects for sub in redirect.body_subs]
        for sub in subs:
            found.extend(self.substitution(sub, depth, consumer))

        targets = self.redirects(simple.redirects, unwrapped, consumer, depth, found)
        writes = self.writes(targets, command, unwrapped, found)

        for _how, word in unwrapped.scripts:
            found.append(self.line(word.text, depth + 1))
        found.extend(ask(reason) for reason in unwrapped.asks)

        if command is not None and unwrapped.reads_stdin and consumer in _CODE_RUNNERS:
            found.extend(self.stdin_program(consumer, upstream, downloaded, simple, depth))

        last = len(unwrapped.views) - 1
        for index, view in enumerate(unwrapped.views):
            unknown = unwrapped.unknown_args and index == last
            found.extend(check_command(view, self.cwd, unknown_args=unknown))
            found.extend(self.rule_hits(view))
        if command:
            for start in range(1, len(command)):
                hidden = check_command(command[start:], self.cwd, hidden=True)
                found.extend(d for d in hidden if d.verdict is Verdict.DENY)
            if command[0].opaque or command[0].globbed:
                found.append(ask(f"ask: the command name {command[0].text} cannot be judged"))
            if name_of(command[0]) == "find":
                denials, nested = check_find(list(command[1:]), self.cwd)
                found.extend(denials)
                for words_ in nested:
                    inner = unwrap(tuple(words_))
                    found.append(self.simple(Simple(tuple(words_), ()), inner, depth + 1))

        decision = strictest(d for d in found if d.verdict is not Verdict.ALLOW)
        if decision is None:
            own = self.level_or_allow(command, unwrapped, writes)
            decision = strictest([*found, own]) or own
        self.track_cwd(command)
        return decision

    def substitution(self, sub: Substitution, depth: int, consumer: str) -> list[Decision]:
        if sub.kind == ARITHMETIC:
            return [ask("ask: arithmetic expansion $((...)) cannot be judged")]
        found = [ask(f"ask: {sub.kind} substitution cannot be judged")]
        if consumer in _CODE_RUNNERS and _mentions_downloader(sub.text):
            found.append(deny(f"built-in deny: a download run by {consumer}"))
        found.append(self.line(sub.text, depth + 1))
        return found

    def redirects(
        self,
        redirects: Sequence[Redirect],
        unwrapped: Unwrapped,
        consumer: str,
        depth: int,
        found: list[Decision],
    ) -> list[Word]:
        """Redirect targets; here-documents and here-strings fed to a shell are judged as lines."""
        writes: list[Word] = []
        shell_stdin = unwrapped.reads_stdin and consumer in _CODE_RUNNERS
        for redirect in redirects:
            if redirect.op in ("<<", "<<-"):
                found.append(ask("ask: here-document cannot be judged"))
                if shell_stdin and consumer in SHELLS:
                    found.append(self.line(redirect.body or "", depth + 1))
            elif redirect.op == "<<<" and shell_stdin:
                found.append(self.line(redirect.target.text, depth + 1))
                if consumer not in SHELLS:
                    found.append(ask(f"ask: a program given to {consumer} cannot be judged"))
            elif redirect.op == "<" and shell_stdin:
                found.append(ask(f"ask: {consumer} runs a file that cannot be judged"))
            elif redirect.op in _OUTPUT_OPS:
                target = redirect.target
                if redirect.op == ">&" and (target.text.isdigit() or target.text == "-"):
                    continue  # 2>&1: a descriptor, not a file
                writes.append(target)
        return writes

    def writes(
        self,
        targets: list[Word],
        command: tuple[Word, ...] | None,
        unwrapped: Unwrapped,
        found: list[Decision],
    ) -> list[Word]:
        """Files written: redirect targets, tee's operands, `time -o FILE`; devices checked."""
        targets = targets + unwrapped.writes
        if command and name_of(command[0]) == "tee":
            targets += [word for word in command[1:] if not word.text.startswith("-")]
        writes: list[Word] = []
        for word in targets:
            if is_harmless_device(word):
                continue
            denial = check_write_target(word)
            if denial:
                found.append(denial)
            writes.append(word)
        return writes

    def stdin_program(
        self,
        consumer: str,
        upstream: Simple | None,
        downloaded: bool,
        simple: Simple,
        depth: int,
    ) -> list[Decision]:
        """A shell or interpreter reading its program from stdin: what feeds it decides."""
        if downloaded:
            return [deny(f"built-in deny: a download piped into {consumer}")]
        if upstream is None or consumer not in SHELLS:
            return []
        produced = _literal_output(upstream)
        if produced is None:
            return [ask(f"ask: {consumer} reading commands from a pipe cannot be judged")]
        return [self.line(produced, depth + 1)]

    # -- rules and the level ----------------------------------------------------

    def rule_hits(self, view: tuple[Word, ...]) -> list[Decision]:
        """Deny rules, the task's denylist and ask rules, against one layer of a command."""
        texts = _forms(view)
        found = [
            deny(f"deny: {rule.source}")
            for rule in self.ctx.deny
            if any(rule.matches_words(text) for text in texts)
        ]
        for prefix in self.ctx.denylist:
            if any(text == prefix or text.startswith(prefix + " ") for text in texts):
                found.append(deny(f"deny (task denylist): {prefix}"))
        for rule in self.ctx.ask:
            if any(rule.matches_words(text) for text in texts):
                self.ask_rule_hit = True
                found.append(ask(f"ask: {rule.source}"))
        return found

    def level_or_allow(
        self, command: tuple[Word, ...] | None, unwrapped: Unwrapped, writes: list[Word]
    ) -> Decision:
        """The verdict when no deny or ask applied: allow rules, pre-approvals, then the level."""
        level = self.ctx.level
        if not command:
            risky = [name for name in unwrapped.env if DANGEROUS_ENV.match(name)]
            if command is not None and risky:
                return self.by_level(f"setting {risky[0]} changes what later commands run")
            if writes:
                return self.by_level(f"output to {writes[0].text} is a write")
            return allow("nothing to run")
        if level is Level.STUDENT:
            return deny("level STUDENT: bash is not a read-only tool")
        if writes:
            return self.by_level(f"output to {writes[0].text} is a write")
        risky = [name for name in unwrapped.env if DANGEROUS_ENV.match(name)]
        text = " ".join(word.text for word in command)
        if not risky:
            for rule, label in self.granting():
                if rule.matches_words(text, exact_allowed=not unwrapped.unknown_args):
                    return allow(f"{label}: {rule.source}")
        if level is Level.SUPERVISED:
            plain = not risky and not unwrapped.unknown_args
            plain = plain and not any(word.opaque for word in command)
            entry = allow_listed(command, self.cwd) if plain else None
            if entry is not None:
                return allow(f"level SUPERVISED: allow-list: {entry.command}")
            shown = " ".join(word.text for word in command[:2])
            return ask(f"level SUPERVISED: {shown} is not in the allow-list")
        return self.by_level(f"{command[0].text} is a command")

    def by_level(self, why: str) -> Decision:
        level = self.ctx.level
        if level is Level.AUTONOMOUS:
            return allow("level AUTONOMOUS: not denied")
        if level is Level.STUDENT:
            return deny("level STUDENT: bash is not a read-only tool")
        if level is Level.INTERN:
            return ask("level INTERN: every command asks")
        return ask(f"level SUPERVISED: {why}")

    def track_cwd(self, command: tuple[Word, ...] | None) -> None:
        if not command:
            return
        name = name_of(command[0])
        if name in ("cd", "pushd"):
            self.cwd = change_dir(self.cwd, list(command[1:]))
        elif name == "popd":
            self.cwd = None


def _forms(view: tuple[Word, ...]) -> tuple[str, ...]:
    """The command as written and with argv[0]'s directory dropped (`/bin/rm` is `rm`)."""
    rest = [word.text for word in view[1:]]
    written = " ".join([view[0].text, *rest])
    bare = " ".join([name_of(view[0]), *rest])
    return (written,) if written == bare else (written, bare)


def _literal_output(simple: Simple) -> str | None:
    """What `echo ...` or `printf ...` writes when its words are all literal, else None."""
    unwrapped = unwrap(simple.words)
    command = unwrapped.command
    if not command or simple.redirects or any(word.opaque for word in command):
        return None
    name = name_of(command[0])
    args = [word.text for word in command[1:]]
    if name == "echo":
        while args and args[0] in ("-n", "-e", "-E", "-ne", "-en"):
            args = args[1:]
        return " ".join(args).replace("\\n", "\n")
    if name == "printf" and args:
        return " ".join(args).replace("\\n", "\n")
    return None


def _mentions_downloader(src: str) -> bool:
    script = parse(src)
    for pipeline in script.pipelines:
        for simple in pipeline:
            for view in unwrap(simple.words).views:
                if name_of(view[0]) in DOWNLOADERS:
                    return True
    return False
