"""A fake Anthropic Messages API: scripted turns over real HTTP and SSE, standard library only.

The real `anthropic` SDK talks to it through its base URL, so the runner's agent
loop is tested with the SDK's own streaming, parsing and retries. Each POST to
/v1/messages takes the next scripted turn: a reply (text and tool_use blocks,
streamed as Anthropic streams them) or a fault (an HTTP error, an `error` event
mid-stream, a stream cut short). Every request is recorded.

    with fake_anthropic() as api:
        api.script(reply(text("Done.")))
        ... point ANTHROPIC_BASE_URL at api.base_url ...
        assert api.requests[0].body["messages"][0]["role"] == "user"
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Text:
    """A text block, streamed in `chunks` (the whole text in one delta if none are given)."""

    text: str
    chunks: tuple[str, ...] = ()
    # When set, "{now}" in each delta is replaced by the wall-clock time (time.time(),
    # in seconds) at which that delta is written, after the turn's delay.
    stamp: bool = False

    def pieces(self) -> tuple[str, ...]:
        return self.chunks or ((self.text,) if self.text else ())


@dataclass(frozen=True)
class ToolUse:
    """A tool_use block; its input is streamed as input_json_delta pieces."""

    name: str
    input: dict[str, Any]
    id: str = ""


Block = Text | ToolUse


@dataclass(frozen=True)
class Reply:
    """A streamed message."""

    blocks: tuple[Block, ...]
    stop_reason: str | None
    input_tokens: int = 100
    output_tokens: int = 20
    # Seconds between events, for a slow stream.
    delay: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class Fault:
    """A turn that goes wrong.

    kind "status": an HTTP error `status` with an Anthropic error body.
    kind "error_event": a 200 stream that sends `partial` text, then an `error` event.
    kind "truncated": a 200 stream that sends `partial` text and closes without
    message_delta or message_stop.
    kind "garbled": a 200 stream that sends `partial` text, then an event whose data
    is not JSON.
    """

    kind: str
    status: int = 200
    error_type: str = "api_error"
    message: str = "fake failure"
    partial: str = ""
    retry_after: str | None = "0"


Turn = Reply | Fault


def text(value: str, *chunks: str) -> Text:
    return Text(value, tuple(chunks))


def stamped_text(*chunks: str) -> Text:
    """A text block whose deltas carry their send time: "{now}" in a chunk becomes
    time.time() as the delta is written (for latency measurements)."""
    return Text("".join(chunks), tuple(chunks), stamp=True)


def tool_use(name: str, tool_input: dict[str, Any], call_id: str = "") -> ToolUse:
    return ToolUse(name, tool_input, call_id)


def reply(
    *blocks: Block | str,
    stop_reason: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 20,
    delay: float = 0.0,
    model: str = "",
) -> Reply:
    """A message; its stop reason is tool_use when it has a tool_use block, else end_turn."""
    made = tuple(Text(b) if isinstance(b, str) else b for b in blocks)
    if stop_reason is None:
        stop_reason = "tool_use" if any(isinstance(b, ToolUse) for b in made) else "end_turn"
    return Reply(made, stop_reason, input_tokens, output_tokens, delay, model)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def status(code: int, message: str = "", retry_after: str | None = "0") -> Fault:
    """An HTTP error answer, with `retry-after` (the SDK retries 429 and 5xx)."""
    error_type = _ERROR_TYPES.get(code, "api_error")
    return Fault("status", code, error_type, message or f"fake {error_type}", "", retry_after)


def error_event(
    error_type: str = "api_error", message: str = "fake mid-stream failure", partial: str = "Work"
) -> Fault:
    return Fault("error_event", 200, error_type, message, partial)


def truncated(partial: str = "I will") -> Fault:
    return Fault("truncated", partial=partial)


def garbled(partial: str = "I will") -> Fault:
    return Fault("garbled", partial=partial)


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    # Wall-clock times (time.time()): the request line, headers and body read, and
    # the answer's last byte written. `finished` stays 0.0 while the answer is going.
    received: float = 0.0
    finished: float = 0.0

    @property
    def api_key(self) -> str:
        return _key_of(self.headers)

    @property
    def answer_seconds(self) -> float:
        """How long the fake spent answering (reading the body to the last byte written)."""
        return self.finished - self.received if self.finished else 0.0


def _key_of(headers: dict[str, str]) -> str:
    """The key a request carries: `x-api-key`, or a bearer token (newer SDKs send that)."""
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else ""


@dataclass
class FakeAnthropic:
    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    # Keys answered with 401 everywhere.
    bad_keys: set[str] = field(default_factory=set)
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    _turns: deque[Turn] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def script(self, *turns: Turn) -> None:
        """Queues turns; each POST /v1/messages takes the next one."""
        with self._lock:
            self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._turns)

    @property
    def message_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/v1/messages")]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_turn(self) -> Turn | None:
        with self._lock:
            return self._turns.popleft() if self._turns else None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_fake{next(self._ids):06d}"


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: each response ends by closing the connection, as a cut stream does.
    protocol_version = "HTTP/1.0"
    # The request being answered (one per connection, as HTTP/1.0 closes it after).
    _request: Request | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _take(self, method: str) -> tuple[FakeAnthropic, Any]:
        fake = self.server.fake
        received = time.time()
        body = self._read_body() if method == "POST" else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._request = Request(method, self.path, headers, body, received)
        fake._record(self._request)
        return fake, body

    def _done(self) -> None:
        # The answer ends at the connection's close (HTTP/1.0): end the writing side
        # now, so `finished` is when the client can see the end.
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        if self._request is not None:
            self._request.finished = time.time()

    def _json(self, code: int, body: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _refuse_bad_key(self, fake: FakeAnthropic) -> bool:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if _key_of(headers) in fake.bad_keys:
            self._json(401, _error_body("authentication_error", "invalid x-api-key"))
            return True
        return False

    def do_GET(self) -> None:
        try:
            self._get()
        finally:
            self._done()

    def do_POST(self) -> None:
        try:
            self._post()
        finally:
            self._done()

    def _get(self) -> None:
        fake, _ = self._take("GET")
        if self._refuse_bad_key(fake):
            return
        if self.path.split("?")[0].rstrip("/") != "/v1/models":
            self._json(404, _error_body("not_found_error", f"no route {self.path}"))
            return
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in fake.models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        self._json(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})

    def _post(self) -> None:
        fake, body = self._take("POST")
        if self._refuse_bad_key(fake):
            return
        if self.path.split("?")[0].rstrip("/") != "/v1/messages":
            self._json(404, _error_body("not_found_error", f"no route {self.path}"))
            return
        turn = fake._next_turn()
        if turn is None:
            # Not retryable, so a test that sends more requests than it scripted fails fast.
            self._json(
                400,
                _error_body("invalid_request_error", "fake server: no scripted turn left"),
                [("x-should-retry", "false")],
            )
            return
        if isinstance(turn, Fault) and turn.kind == "status":
            headers = [("x-should-retry", "true" if turn.status in (429, 529) else "")]
            headers = [h for h in headers if h[1]]
            if turn.retry_after is not None:
                headers.append(("retry-after", turn.retry_after))
                # The SDK ignores a retry-after of 0 and backs off for half a
                # second; this keeps the retry immediate.
                headers.append(("retry-after-ms", "1"))
            self._json(turn.status, _error_body(turn.error_type, turn.message), headers)
            return
        model = DEFAULT_MODEL
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._stream(fake, turn, model)

    def _stream(self, fake: FakeAnthropic, turn: Turn, model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_fake")
        self.end_headers()
        delay = turn.delay if isinstance(turn, Reply) else 0.0
        input_tokens = turn.input_tokens if isinstance(turn, Reply) else 10

        def send(event: str, data: dict[str, Any], stamp: bool = False) -> None:
            if delay and event != "message_start" and fake._closing.wait(delay):
                raise BrokenPipeError("fake server closing")
            encoded = json.dumps(data)
            if stamp:
                encoded = encoded.replace("{now}", f"{time.time():.6f}")
            self.wfile.write(f"event: {event}\ndata: {encoded}\n\n".encode())
            self.wfile.flush()

        send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": fake._next_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": (turn.model if isinstance(turn, Reply) else "") or model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
        send("ping", {"type": "ping"})
        if isinstance(turn, Fault):
            if turn.partial:
                self._text_block(send, 0, Text(turn.partial), close=False)
            if turn.kind == "error_event":
                send("error", _error_body(turn.error_type, turn.message))
            elif turn.kind == "garbled":
                self.wfile.write(b"event: content_block_delta\ndata: {not json\n\n")
            # "truncated": the connection closes here, mid-message.
            return
        for index, block in enumerate(turn.blocks):
            if isinstance(block, Text):
                self._text_block(send, index, block, close=True)
            else:
                self._tool_block(send, index, block, fake)
        send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": turn.output_tokens},
            },
        )
        send("message_stop", {"type": "message_stop"})

    @staticmethod
    def _text_block(send: Any, index: int, block: Text, *, close: bool) -> None:
        send(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for piece in block.pieces():
            send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
                block.stamp,
            )
        if close:
            send("content_block_stop", {"type": "content_block_stop", "index": index})

    @staticmethod
    def _tool_block(send: Any, index: int, block: ToolUse, fake: FakeAnthropic) -> None:
        send(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": block.id or fake._next_id("toolu"),
                    "name": block.name,
                    "input": {},
                },
            },
        )
        encoded = json.dumps(block.input)
        # Two pieces at least, as the API splits input JSON anywhere.
        cut = len(encoded) // 2
        for piece in (encoded[:cut], encoded[cut:]):
            if piece:
                send(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        send("content_block_stop", {"type": "content_block_stop", "index": index})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAnthropic


@contextlib.contextmanager
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """Serves a fresh fake on 127.0.0.1 (a free port) for the block's duration."""
    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeAnthropic()
    server.fake = fake
    host, port = server.server_address[:2]
    fake.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-anthropic", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake._closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def tool_results(request: Request) -> list[dict[str, Any]]:
    """The tool_result blocks of a request's last message (the one user message they go in)."""
    last = request.body["messages"][-1]
    assert last["role"] == "user", last
    content = last["content"]
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    """A tool_result block's content as text."""
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
