"""The model API's failures in words a user can act on (the key never among them)."""

from __future__ import annotations

from typing import Any

import anthropic

KEY_MISSING = "ANTHROPIC_API_KEY is not set: run `stigmer secrets set ANTHROPIC_API_KEY`"
KEY_REFUSED = (
    "the API refused the key (401): set a new one with `stigmer secrets set ANTHROPIC_API_KEY`"
)
_MAX_MESSAGE = 500


def describe(exc: anthropic.APIError, *, base_url: str, model: str, retries: int) -> str:
    """Why a request to the model failed, once the SDK's retries are spent."""
    if isinstance(exc, anthropic.APITimeoutError):
        return f"the model API at {base_url} did not answer in time (after {retries} retries)"
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {_one_line(str(cause))}" if cause and str(cause) else ""
        return f"cannot reach the model API at {base_url} (after {retries} retries){detail}"
    if not isinstance(exc, anthropic.APIStatusError):
        return f"the model API failed: {_one_line(exc.message)}"
    code = exc.status_code
    error_type, message = _error_of(exc)
    if code == 200:
        # An `error` event in the middle of a stream.
        return f"the API reported an error mid-stream ({error_type or 'error'}): {message}"
    if code == 401:
        return KEY_REFUSED
    if code == 403:
        return f"forbidden (403): {message}"
    if code == 400:
        return f"the API rejected the request (400): {message}"
    if code == 404:
        return f"not found (404): {message} (is the model name {model!r} right?)"
    if code == 413:
        return f"the request is too large for the API (413): {message}"
    if code == 429:
        return f"rate limited (429) after {retries} retries: {message}"
    if code == 529 or error_type == "overloaded_error":
        return f"the API is overloaded ({code}) after {retries} retries: {message}"
    if code >= 500:
        return f"the API failed ({code}) after {retries} retries: {message}"
    return f"the API answered {code}: {message}"


def _error_of(exc: anthropic.APIStatusError) -> tuple[str, str]:
    """The error's type and message from an Anthropic error body, else the SDK's text."""
    body: Any = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error_type = str(error.get("type") or "")
        message = str(error.get("message") or "") or error_type
        return error_type, _one_line(message)
    return "", _one_line(str(body) if isinstance(body, str) and body else exc.message)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


def scrub(text: str, secret: str) -> str:
    """`text` without `secret` in it (a server may echo what it was sent)."""
    return text.replace(secret, "[redacted]") if secret else text
