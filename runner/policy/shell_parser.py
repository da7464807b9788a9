"""Groups a command line's tokens into pipelines of simple commands.

This is deliberately not a shell grammar: every simple command found anywhere (inside `if`,
loops, subshells, `{ ...; }` groups, function bodies) is returned, so each can be judged; the
constructs whose effect cannot be judged from their parts are reported as notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.policy.shell_lexer import Op, Redirect, ShellSyntaxError, Token, Word, lex

# Operators that join commands into one pipeline (what one writes, the next reads).
_PIPES = frozenset({"|", "|&"})


@dataclass(frozen=True)
class Simple:
    """One simple command: its words (assignments and reserved words included) and redirects."""

    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...]

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


Pipeline = tuple[Simple, ...]


@dataclass(frozen=True)
class Script:
    pipelines: tuple[Pipeline, ...]
    notes: tuple[str, ...] = ()  # constructs that cannot be judged, for an "ask" rule text
    error: str | None = (
        None  # set when the line could not be lexed; pipelines hold what came before
    )


def parse(src: str) -> Script:
    error: str | None = None
    try:
        tokens = lex(src)
    except ShellSyntaxError as exc:
        # What came before the error is still judged: `rm -rf / "` must not hide behind its quote.
        tokens = exc.tokens
        error = str(exc)
    pipelines, notes = _group(tokens)
    return Script(pipelines, notes, error)


def _group(tokens: list[Token]) -> tuple[tuple[Pipeline, ...], tuple[str, ...]]:
    pipelines: list[Pipeline] = []
    notes: list[str] = []
    pipeline: list[Simple] = []
    words: list[Word] = []
    redirects: list[Redirect] = []

    def end_simple() -> None:
        if words or redirects:
            pipeline.append(Simple(tuple(words), tuple(redirects)))
        words.clear()
        redirects.clear()

    def end_pipeline() -> None:
        end_simple()
        if pipeline:
            pipelines.append(tuple(pipeline))
        pipeline.clear()

    for index, token in enumerate(tokens):
        if isinstance(token, Word):
            words.append(token)
        elif isinstance(token, Redirect):
            redirects.append(token)
        elif token.text in _PIPES:
            end_simple()
        else:
            if token.text == "(" and words:
                following = tokens[index + 1] if index + 1 < len(tokens) else None
                if len(words) == 1 and isinstance(following, Op) and following.text == ")":
                    notes.append(f"function definition {words[0].text}()")
                else:
                    notes.append("a '(' inside a command")
            end_pipeline()
    end_pipeline()
    return tuple(pipelines), tuple(notes)
