"""The agent's parts: prices, approval summaries and rules, starting without the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.agent import prices
from runner.agent.prompt import always_rule, approval_summary, cut


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("claude-sonnet-4-5", (3.0, 15.0)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-sonnet-4-20250514", (3.0, 15.0)),
        ("claude-3-7-sonnet-latest", (3.0, 15.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0)),
        ("claude-opus-4-20250514", (15.0, 75.0)),
        ("claude-haiku-4-5", (1.0, 5.0)),
        ("claude-3-5-haiku-20241022", (0.8, 4.0)),
        ("anthropic/claude-sonnet-4-5", (3.0, 15.0)),
    ],
)
def test_prices_by_family(model: str, per_million: tuple[float, float]) -> None:
    price = prices.price_for(model)
    assert price is not None and (price.input, price.output) == per_million


def test_an_unknown_model_costs_nothing() -> None:
    assert prices.price_for("llama3.1:8b") is None
    assert prices.cost_usd(None, 10**6, 10**6) == 0.0


def test_cost_counts_cache_reads_and_writes() -> None:
    price = prices.Price(3.0, 15.0)
    assert prices.cost_usd(price, 1_000_000, 0) == pytest.approx(3.0)
    assert prices.cost_usd(price, 0, 0, cache_write_tokens=1_000_000) == pytest.approx(3.75)
    assert prices.cost_usd(price, 0, 0, cache_read_tokens=1_000_000) == pytest.approx(0.3)
    assert prices.cost_usd(price, 0, 1_000_000) == pytest.approx(15.0)


def test_the_runner_starts_without_importing_the_sdk() -> None:
    code = "import sys, runner.main, runner.worker; print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_approval_summaries_are_one_line() -> None:
    assert approval_summary("bash", {"command": "git push\n  origin"}) == "bash: git push origin"
    assert approval_summary("write_file", {"path": "a.txt", "content": "héllo"}) == (
        "write_file: a.txt (6 bytes)"
    )
    assert approval_summary("glob", {"pattern": "**/*.py"}) == 'glob: {"pattern": "**/*.py"}'
    assert len(approval_summary("bash", {"command": "x" * 1000})) < 320


def test_always_rules_match_exactly_this_call() -> None:
    ws = "/work/ws"
    assert always_rule("bash", {"command": "make test"}, ws) == "bash(make test)"
    assert always_rule("write_file", {"path": "src/a.py"}, ws) == "write_file(src/a.py)"
    assert always_rule("edit_file", {"path": "/work/ws/src/a.py"}, ws) == "edit_file(src/a.py)"
    assert always_rule("write_file", {"path": "/etc/passwd"}, ws) is None
    assert always_rule("write_file", {"path": "src/*.py"}, ws) is None
    assert always_rule("glob", {"pattern": "*"}, ws) is None


def test_cut_says_how_much_was_cut() -> None:
    assert cut("abc", 5) == "abc"
    assert cut("abcdefgh", 3) == "abc\n… (5 more characters cut)"
