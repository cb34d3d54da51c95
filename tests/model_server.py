"""A stand-in for the model: a stdlib HTTP server on 127.0.0.1 answering the Messages API's server-sent events.

The one part of an assistant session a test may stand in for. Each request is answered by a :class:`Reply` a
test's ``choose`` function picks from the request body (the expanded command's text is in it, so one variant can be
answered faster than the other); every answer is logged (its message id, usage numbers, delay) so a test can assert
the recorded trial equals what the server sent.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = "Done."
    delay: float = 0.0  # seconds before the first byte
    input_tokens: int = 100
    output_tokens: int = 20
    tool: tuple[str, dict[str, Any]] | None = None  # (tool name, input): answer with a tool_use block instead


@dataclass
class Served:
    message_id: str
    reply: Reply
    body: dict[str, Any]
    streamed: bool


def send_json(handler: BaseHTTPRequestHandler, data: Any) -> None:
    payload = json.dumps(data).encode()
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@dataclass
class ModelServer:
    choose: Callable[[dict[str, Any]], Reply]
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ModelServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                self._json({})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    send_json(self, {"input_tokens": 1})
                    return
                owner.answer(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        reply = self.choose(body)
        message_id = "msg_" + uuid.uuid4().hex[:24]
        streamed = bool(body.get("stream"))
        with self.lock:
            self.served.append(Served(message_id, reply, body, streamed))
        time.sleep(reply.delay)
        model = body.get("model", "claude-test")
        block, stop = content_block(reply)
        usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}  # fmt: skip
        if not streamed:
            message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [block],
                       "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip
            send_json(handler, message)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("cache-control", "no-cache")
        handler.end_headers()
        for event in sse_events(message_id, model, block, stop, usage):
            handler.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()

    def streamed(self) -> list[Served]:
        return [s for s in self.served if s.streamed]


def content_block(reply: Reply) -> tuple[dict[str, Any], str]:
    if reply.tool is not None:
        name, args = reply.tool
        return {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name, "input": args}, "tool_use"
    return {"type": "text", "text": reply.text}, "end_turn"


def sse_events(message_id: str, model: str, block: dict[str, Any], stop: str,
               usage: dict[str, int]) -> list[dict[str, Any]]:  # fmt: skip
    start_usage = {**usage, "output_tokens": 1}
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": start_usage}  # fmt: skip
    if block["type"] == "text":
        first = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    else:
        first = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    return [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": first},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
         "usage": {"output_tokens": usage["output_tokens"]}},
        {"type": "message_stop"},
    ]


def request_text(body: dict[str, Any]) -> str:
    """Every text of the request's messages (the expanded command is one of them)."""
    out: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    out.append(str(part.get("text", "")) + str(part.get("content", "")))
    return "\n".join(out)


def has_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "tool_result" for p in content)
