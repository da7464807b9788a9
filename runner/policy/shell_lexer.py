"""A small lexer for POSIX/bash command lines: enough to judge a command, never to run one.

`shlex` removes quotes but cannot say whether a `$(` was inside single quotes (inert) or double
quotes (it runs), nor spot here-documents or process substitution, so this lexer does its own
quoting. Each word keeps its value after quote removal (so `'r''m'`, `"rm"` and `r\\m` are all
`rm`) plus what could make that value differ at run time: parameter expansion, command or
process substitution, globbing. Expansions stay in the value as written (`$HOME`), which is what
the judge needs to recognise `rm -rf "$HOME"`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

# Kinds of substitution; the inner text is kept so the judge can parse it recursively.
COMMAND_SUB = "$(...)"
BACKTICK_SUB = "`...`"
ARITHMETIC = "$((...))"


class ShellSyntaxError(ValueError):
    """A command line this lexer cannot take apart; `tokens` holds what came before the error."""

    def __init__(self, message: str, tokens: list[Token]) -> None:
        super().__init__(message)
        self.tokens = tokens


@dataclass(frozen=True)
class Substitution:
    kind: str  # COMMAND_SUB, BACKTICK_SUB, ARITHMETIC, "<(...)" or ">(...)"
    text: str  # the source inside the delimiters


@dataclass(frozen=True)
class Word:
    text: str  # value after quote removal, expansions left as written
    quoted: bool = False  # some of it was quoted or escaped (so it is no reserved word)
    expands: bool = False  # $name, ${...} or $((...)): the value is only known at run time
    globbed: bool = False  # an unquoted * ? or [: the value depends on the file system
    subs: tuple[Substitution, ...] = ()
    raw: str = ""  # the source text, to recognise assignments (`X=1 cmd`) as the shell does

    @property
    def opaque(self) -> bool:
        """True when the shell will replace part of this word by something unknown here."""
        return self.expands or bool(self.subs)


@dataclass(frozen=True)
class Op:
    """A control operator: ; & && || | |& ( ) ;; ;& ;;& or a newline."""

    text: str


@dataclass(frozen=True)
class Redirect:
    op: str  # > >> >| < << <<- <<< <> >& <& &> &>>
    target: Word  # the file, the duplicated descriptor, or a here-document's delimiter
    fd: str = ""  # an explicit descriptor number ("2" in 2>), empty when implied
    body: str | None = None  # a here-document's text
    body_subs: tuple[Substitution, ...] = ()  # substitutions that run inside that text


Token = Word | Op | Redirect

_CONTROL_OPS = (";;&", ";;", ";&", "&&", "||", "|&", ";", "&", "|", "(", ")", "\n")
_REDIRECT_OPS = ("<<<", "<<-", "&>>", "<<", "<>", "<&", ">>", ">&", ">|", "&>", "<", ">")
_WORD_END = frozenset(" \t\n;&|()<>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_FD_REDIRECT = re.compile(r"\d+(?=[<>])")
_ANSI_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
# Brace expansion can turn one harmless-looking word into several (`{/,x}` is `/ x`); past this
# many results the word is treated as unknown rather than expanded.
_MAX_BRACE_WORDS = 64


@dataclass
class _WordState:
    buf: list[str] = field(default_factory=list)
    quoted: bool = False
    expands: bool = False
    globbed: bool = False
    braces: bool = False  # an unquoted "{": brace expansion may apply
    subs: list[Substitution] = field(default_factory=list)


@dataclass
class _PendingHeredoc:
    index: int  # of the Redirect in the token list, replaced once the body is read
    delimiter: str
    strip_tabs: bool
    expands: bool  # an unquoted delimiter: the body sees $(...) and backticks


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.tokens: list[Token] = []
        self.pending: list[_PendingHeredoc] = []

    def fail(self, message: str) -> ShellSyntaxError:
        return ShellSyntaxError(message, self.tokens)

    # -- the token stream ---------------------------------------------------

    def run(self) -> list[Token]:
        src = self.src
        while True:
            while self.i < len(src) and src[self.i] in " \t":
                self.i += 1
            if self.i >= len(src):
                break
            c = src[self.i]
            if c == "#":
                end = src.find("\n", self.i)
                self.i = len(src) if end < 0 else end
                continue
            if src.startswith("\\\n", self.i):  # a line continuation between words
                self.i += 2
                continue
            if c == "\n":
                self.i += 1
                self.tokens.append(Op("\n"))
                self.read_heredocs()
                continue
            if self.redirect():
                continue
            if c in _WORD_END and not src.startswith(("<(", ">("), self.i):
                op = next(op for op in _CONTROL_OPS if src.startswith(op, self.i))
                self.i += len(op)
                self.tokens.append(Op(op))
                continue
            self.tokens.extend(self.word())
        if self.pending:
            # bash runs a here-document cut short by the end of input, so judge what is there.
            self.read_heredocs()
        return self.tokens

    def redirect(self) -> bool:
        src = self.src
        fd = ""
        match = _FD_REDIRECT.match(src, self.i)
        start = match.end() if match else self.i
        if src.startswith(("<(", ">("), start):
            return False
        op = next((op for op in _REDIRECT_OPS if src.startswith(op, start)), None)
        if op is None:
            return False
        if match:
            fd = match.group()
        self.i = start + len(op)
        while self.i < len(src) and src[self.i] in " \t":
            self.i += 1
        if self.i >= len(src) or (
            src[self.i] in _WORD_END and not src.startswith(("<(", ">("), self.i)
        ):
            raise self.fail(f"{op} without a target")
        words = self.word(expand_braces=False)
        target = words[0]
        self.tokens.append(Redirect(op, target, fd))
        if op in ("<<", "<<-"):
            self.pending.append(
                _PendingHeredoc(len(self.tokens) - 1, target.text, op == "<<-", not target.quoted)
            )
        return True

    def read_heredocs(self) -> None:
        src = self.src
        for doc in self.pending:
            lines: list[str] = []
            while self.i < len(src):
                end = src.find("\n", self.i)
                line = src[self.i : len(src) if end < 0 else end]
                self.i = len(src) if end < 0 else end + 1
                if (line.lstrip("\t") if doc.strip_tabs else line) == doc.delimiter:
                    break
                lines.append(line + "\n")
            body = "".join(lines)
            subs = scan_double_quoted(body) if doc.expands else ()
            old = self.tokens[doc.index]
            assert isinstance(old, Redirect)
            self.tokens[doc.index] = Redirect(old.op, old.target, old.fd, body, subs)
        self.pending.clear()

    # -- words ----------------------------------------------------------------

    def word(self, expand_braces: bool = True) -> list[Word]:
        src = self.src
        start = self.i
        st = _WordState()
        while self.i < len(src):
            c = src[self.i]
            if c in "<>" and src.startswith("(", self.i + 1):
                self.i += 2
                inner = self.balanced(")")
                st.subs.append(Substitution(c + "(...)", inner))
                st.buf.append(f"{c}({inner})")
            elif c in _WORD_END:
                break
            elif c == "\\":
                if src.startswith("\n", self.i + 1):
                    self.i += 2
                    continue
                st.buf.append(src[self.i + 1 : self.i + 2])
                st.quoted = True
                self.i += 2
            elif c == "'":
                end = src.find("'", self.i + 1)
                if end < 0:
                    raise self.fail("unterminated single quote")
                st.buf.append(src[self.i + 1 : end])
                st.quoted = True
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self.double_quoted(st)
            elif c == "$":
                self.dollar(st, in_double_quotes=False)
            elif c == "`":
                self.i += 1
                inner = self.backtick()
                st.subs.append(Substitution(BACKTICK_SUB, inner))
                st.buf.append(f"`{inner}`")
            else:
                if c in "*?[":
                    st.globbed = True
                elif c == "{":
                    st.braces = True
                st.buf.append(c)
                self.i += 1
        text = "".join(st.buf)
        word = Word(
            text, st.quoted, st.expands, st.globbed, tuple(st.subs), raw=src[start : self.i]
        )
        if expand_braces and st.braces:
            return brace_expand(word)
        return [word]

    def double_quoted(self, st: _WordState, closing: bool = True) -> None:
        """Reads up to the closing quote (self.i is just past the opening one).

        With closing False it reads to the end: a here-document's body, where quotes are text.
        """
        src = self.src
        st.quoted = True
        while self.i < len(src):
            c = src[self.i]
            if c == '"' and closing:
                self.i += 1
                return
            if c == "\\" and self.i + 1 < len(src) and src[self.i + 1] in '$`"\\\n':
                if src[self.i + 1] != "\n":
                    st.buf.append(src[self.i + 1])
                self.i += 2
            elif c == "$":
                self.dollar(st, in_double_quotes=True)
            elif c == "`":
                self.i += 1
                inner = self.backtick()
                st.subs.append(Substitution(BACKTICK_SUB, inner))
                st.buf.append(f"`{inner}`")
            else:
                st.buf.append(c)
                self.i += 1
        if closing:
            raise self.fail("unterminated double quote")

    def dollar(self, st: _WordState, in_double_quotes: bool) -> None:
        src = self.src
        i = self.i
        if src.startswith("$((", i):
            self.i = i + 2
            inner = self.balanced(")")
            st.expands = True
            st.subs.extend(scan_double_quoted(inner))
            st.subs.append(Substitution(ARITHMETIC, inner))
            st.buf.append(f"$({inner})")
        elif src.startswith("$(", i):
            self.i = i + 2
            inner = self.balanced(")")
            st.subs.append(Substitution(COMMAND_SUB, inner))
            st.buf.append(f"$({inner})")
        elif src.startswith("${", i):
            self.i = i + 2
            inner = self.balanced("}")
            st.expands = True
            st.subs.extend(scan_double_quoted(inner))  # ${x:-$(cmd)} runs cmd
            st.buf.append("${" + inner + "}")
        elif src.startswith("$'", i) and not in_double_quotes:
            self.i = i + 2
            st.buf.append(self.ansi_c())
            st.quoted = True
        elif src.startswith('$"', i) and not in_double_quotes:
            self.i = i + 2  # a locale string: a double-quoted one here
            self.double_quoted(st)
        else:
            match = _NAME.match(src, i + 1)
            if match:
                st.expands = True
                st.buf.append(src[i : match.end()])
                self.i = match.end()
            else:
                st.buf.append("$")
                self.i = i + 1

    def balanced(self, close: str) -> str:
        """The text up to the `close` matching an opening just consumed; quotes respected."""
        src = self.src
        open_ = "(" if close == ")" else "{"
        start = self.i
        depth = 1
        while self.i < len(src):
            c = src[self.i]
            if c == "\\":
                self.i += 2
            elif c == "'":
                end = src.find("'", self.i + 1)
                if end < 0:
                    raise self.fail("unterminated single quote")
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self.double_quoted(_WordState())
            elif c == "`":
                self.i += 1
                self.backtick()
            elif c == open_:
                depth += 1
                self.i += 1
            elif c == close:
                depth -= 1
                self.i += 1
                if depth == 0:
                    return src[start : self.i - 1]
            else:
                self.i += 1
        raise self.fail(f"unterminated {open_}...{close}")

    def backtick(self) -> str:
        src = self.src
        out: list[str] = []
        while self.i < len(src):
            c = src[self.i]
            if c == "`":
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < len(src) and src[self.i + 1] in "`$\\":
                out.append(src[self.i + 1])
                self.i += 2
            else:
                out.append(c)
                self.i += 1
        raise self.fail("unterminated backtick")

    def ansi_c(self) -> str:
        """Decodes a $'...' string: `$'\\x72m'` is `rm`, and must be judged as such."""
        src = self.src
        out: list[str] = []
        while self.i < len(src):
            c = src[self.i]
            if c == "'":
                self.i += 1
                return "".join(out)
            if c != "\\" or self.i + 1 >= len(src):
                out.append(c)
                self.i += 1
                continue
            e = src[self.i + 1]
            self.i += 2
            if e in _ANSI_SIMPLE:
                out.append(_ANSI_SIMPLE[e])
            elif e in "xuU":
                size = {"x": 2, "u": 4, "U": 8}[e]
                digits = re.match(f"[0-9a-fA-F]{{1,{size}}}", src[self.i : self.i + size])
                if digits:
                    out.append(chr(min(int(digits.group(), 16), 0x10FFFF)))
                    self.i += digits.end()
                else:
                    out.append("\\" + e)
            elif e in "01234567":
                digits = re.match("[0-7]{1,3}", src[self.i - 1 : self.i + 2])
                assert digits is not None
                out.append(chr(int(digits.group(), 8) & 0xFF))
                self.i += digits.end() - 1
            elif e == "c" and self.i < len(src):
                out.append(chr(ord(src[self.i]) & 0x1F))
                self.i += 1
            else:
                out.append("\\" + e)
        raise self.fail("unterminated $'...' string")


def lex(src: str) -> list[Token]:
    """The tokens of a command line; raises ShellSyntaxError (with the tokens before it)."""
    return _Lexer(src).run()


def scan_double_quoted(text: str) -> tuple[Substitution, ...]:
    """The substitutions that run in text read as if double-quoted (here-documents, ${...})."""
    lexer = _Lexer(text)
    state = _WordState()
    try:
        lexer.double_quoted(state, closing=False)
    except ShellSyntaxError:
        # Cannot be taken apart; report it whole so it is judged as unknown, never ignored.
        return (Substitution(COMMAND_SUB, text),)
    return tuple(state.subs)


def brace_expand(word: Word) -> list[Word]:
    """`{a,b}` and nesting, as bash expands them before anything else; ranges are left as is.

    Only a wholly unquoted, expansion-free word is expanded: with quotes the braces' meaning
    depends on where the quotes are, and such a word is rather marked as unknown.
    """
    if "," not in word.text and ".." not in word.text:
        return [word]
    if word.quoted or word.opaque:
        return [Word(word.text, word.quoted, True, word.globbed, word.subs, word.raw)]
    texts = _expand(word.text)
    if texts is None:
        return [Word(word.text, False, True, word.globbed, (), word.raw)]
    return [Word(text, False, False, word.globbed, (), word.raw) for text in texts]


def _expand(text: str) -> list[str] | None:
    """All brace expansions of text, or None when there would be too many."""
    depth = 0
    start = -1
    commas: list[int] = []
    for i, c in enumerate(text):
        if c == "{":
            if depth == 0:
                start = i
                commas = []
            depth += 1
        elif c == "," and depth == 1:
            commas.append(i)
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0 and commas:
                edges = [start, *commas, i]
                choices = [text[a + 1 : b] for a, b in itertools.pairwise(edges)]
                prefix, suffix = text[:start], text[i + 1 :]
                results: list[str] = []
                for choice in choices:
                    more = _expand(prefix + choice + suffix)
                    if more is None or len(results) + len(more) > _MAX_BRACE_WORDS:
                        return None
                    results.extend(more)
                return results
    return [text]
