"""What the Claude models cost, to count a run's cost and hold it to its limit.

US dollars per million tokens, by model name prefix (the longest match wins, so
a dated name such as claude-sonnet-4-5-20250929 finds its family). Writing to
the prompt cache costs 1.25 times the input price, reading from it 0.1 times.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float  # $ per million input tokens
    output: float  # $ per million output tokens


CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1

_OPUS_4_5 = Price(5.0, 25.0)
_OPUS_4 = Price(15.0, 75.0)
_SONNET = Price(3.0, 15.0)

PRICES: dict[str, Price] = {
    # The 5 generation (Fable 5.1 is the dearest, Sonnet 5 and 5.5 cost the same).
    "claude-fable-5": Price(10.0, 50.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    # Opus 4.5 and later.
    "claude-opus-4": _OPUS_4_5,
    # Opus 4 and 4.1 (claude-opus-4-20250514, claude-opus-4-0, claude-opus-4-1...).
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4-2025": _OPUS_4,
    "claude-3-opus": _OPUS_4,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    "claude-3-5-sonnet": _SONNET,
    "claude-haiku-4": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}


def price_for(model: str) -> Price | None:
    """The model's price, or None for a model not in the table (a local one, say)."""
    name = model.strip().lower()
    # Provider-qualified names: "anthropic/claude-...", "us.anthropic.claude-...".
    for sep in ("/", "anthropic."):
        if sep in name:
            name = name.rsplit(sep, 1)[1]
    best = ""
    for prefix in PRICES:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return PRICES[best] if best else None


def cost_usd(
    price: Price | None,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> float:
    """The cost of some tokens at `price` (0 when the price is unknown)."""
    if price is None:
        return 0.0
    uncached = input_tokens * price.input
    cached = (
        cache_write_tokens * price.input * CACHE_WRITE_FACTOR
        + cache_read_tokens * price.input * CACHE_READ_FACTOR
    )
    return (uncached + cached + output_tokens * price.output) / 1_000_000
