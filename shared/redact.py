"""One redaction filter for every lane a secret could leak through: logs, events,
stored rows, error text and CLI output. Known secret values, and strings shaped
like well-known API keys, become [REDACTED]."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MARK = "[REDACTED]"
# Shapes of keys that are never meant to be shown, whoever's they are.
KEY_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|sk-[A-Za-z0-9]{32,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
)
# Values shorter than this are not redacted by value: "1234" would blank out half a log.
MIN_KNOWN_LENGTH = 8


def looks_like_key(text: str) -> bool:
    return bool(KEY_SHAPES.search(text))


class Redactor:
    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in known:
            self.add(value)

    def add(self, value: str) -> None:
        if len(value) >= MIN_KNOWN_LENGTH and value not in self._known:
            self._known.add(value)
            self._compile()

    def discard(self, value: str) -> None:
        if value in self._known:
            self._known.discard(value)
            self._compile()

    def _compile(self) -> None:
        # Longest first, so a value that contains another is replaced whole.
        values = sorted(self._known, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def knows(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MARK, text)
        return KEY_SHAPES.sub(MARK, text)

    def data(self, data: bytes) -> bytes:
        """Output bytes: redacted as text where they decode, left alone otherwise."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return self._bytes_known(data)
        redacted = self.text(text)
        return data if redacted == text else redacted.encode()

    def _bytes_known(self, data: bytes) -> bytes:
        for value in self._known:
            data = data.replace(value.encode(), MARK.encode())
        return data

    def logging_filter(self) -> logging.Filter:
        return _LogFilter(self)


class _LogFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.text(message)
        if record.exc_info:
            # Render the traceback now, redacted, so the handler prints no raw copy.
            formatted = logging.Formatter().formatException(record.exc_info)
            redacted += "\n" + self._redactor.text(formatted)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = redacted, None
        return True
