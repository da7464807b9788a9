"""The one redaction filter, and the plaintext secrets file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from shared.redact import MARK, Redactor, looks_like_key
from shared.secretstore import SecretStore, Source, format_warning, hint, valid_name

KEY = "sk-ant-api03-abcdefghijklmnop"


def test_known_values_and_key_shapes_are_redacted() -> None:
    redactor = Redactor(["hunter2-password"])
    assert redactor.text("pw=hunter2-password key=" + KEY) == f"pw={MARK} key={MARK}"
    assert redactor.text("ghp_" + "a" * 36) == MARK
    assert redactor.text("AKIAABCDEFGHIJKLMNOP") == MARK
    assert redactor.text("nothing to hide") == "nothing to hide"
    # Short values would blank out ordinary text: they are not redacted by value.
    short = Redactor(["1234"])
    assert short.text("port 1234") == "port 1234"


def test_bytes_are_redacted_as_text_and_as_raw_bytes() -> None:
    redactor = Redactor(["hunter2-password"])
    assert redactor.data(b"x hunter2-password y") == f"x {MARK} y".encode()
    raw = b"\xff\xfe hunter2-password"
    assert redactor.data(raw) == b"\xff\xfe " + MARK.encode()


def test_longest_value_wins() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-longer"])
    assert redactor.text("abcdefgh-longer") == MARK


def test_logging_filter_covers_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redactor = Redactor(["hunter2-password"])
    logger = logging.getLogger("test.redact")
    logger.addFilter(redactor.logging_filter())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("token %s", "hunter2-password")
        try:
            raise ValueError("hunter2-password")
        except ValueError:
            logger.exception("failed with " + KEY)
    text = caplog.text
    assert "hunter2-password" not in text and KEY not in text
    assert text.count(MARK) >= 3


def test_key_shape_detection() -> None:
    assert looks_like_key("export X=" + KEY)
    assert not looks_like_key("sk-ant-")


def test_names_hints_and_format_warnings() -> None:
    assert valid_name("ANTHROPIC_API_KEY") and not valid_name("lower") and not valid_name("1X")
    assert hint(KEY) == "…" + KEY[-4:] and hint("short") == "…"
    assert format_warning("ANTHROPIC_API_KEY", "abc") is not None
    assert format_warning("ANTHROPIC_API_KEY", KEY) is None


def test_plaintext_file_is_private_and_named_in_the_index(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.toml")
    assert not store.plaintext_in_use()
    source = asyncio.run(store.put("GH_TOKEN", 'va"lue\\with-quotes', insecure=True))
    assert source is Source.PLAINTEXT
    assert (tmp_path / "secrets.toml").stat().st_mode & 0o777 == 0o600
    assert store.plaintext_in_use()
    assert store.known_names() == ["GH_TOKEN"]
    assert store._read_plaintext() == {"GH_TOKEN": 'va"lue\\with-quotes'}
    # The index holds names only.
    assert "lue" not in (tmp_path / "secret-names").read_text()
