"""A stand-in OpenAI-compatible chat server on 127.0.0.1, for fast tests of specific model outputs.

It speaks real HTTP (the env talks to it through the openai client exactly as to vLLM), answers
`n` choices per request, and returns a deterministic mix of good and bad metric cards built for
the request in the prompt: choice i of a request with a `seed` is completion `seed + i` of the mix
(so a seeded run gets the same answers in any request order), else the next of a global counter.
Faults can be injected: HTTP errors, broken answers (FAULTS) and slow answers; and groups without
score spread: every k-th request answered with n copies of one completion (`identical_every`).

Run standalone:  python tests/fake_openai.py --port 9100 [--delay S] [--identical-every K]
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from metric_cards.catalog import METRICS_BY_NAME, Unit, parse_request

MODEL = "fake-metric-model"

_VALUES = {
    Unit.CURRENCY: "$48,250",
    Unit.PERCENT: "4.8%",
    Unit.COUNT: "12,430",
    Unit.DURATION: "4m 32s",
    Unit.SCORE: "4.6/5",
    Unit.RATIO: "5.2x",
    Unit.COUNT_OR_PERCENT: "12.5%",
}


def good_card(prompt: str) -> dict[str, Any]:
    request = parse_request(prompt)
    if request is None:
        return {"componentType": "metricCard", "props": {"title": "Metric", "value": "42"}}
    metric = METRICS_BY_NAME[request.metric]
    value = "+42" if request.metric == "net promoter score" else _VALUES[metric.unit]
    higher = metric.polarity.value != "lower"
    return {
        "componentType": "metricCard",
        "props": {
            "title": request.metric.title(),
            "value": value,
            "description": f"{request.metric.capitalize()} for {request.domain}, {request.period}",
            "trend": {"value": 3.2 if higher else -3.2, "isPositive": True},
            "icon": metric.icons[0],
        },
    }


def _variants(prompt: str) -> list[tuple[str, str]]:
    card = good_card(prompt)
    text = json.dumps(card, indent=2)
    bad_icon = json.loads(text)
    bad_icon["props"]["icon"] = "renew"
    wrong = json.loads(text)
    wrong["props"]["title"] = "Quarterly Widgets"
    wrong["props"]["value"] = "lots"
    return [
        (text, "stop"),
        (f"```json\n{text}\n```", "stop"),
        (
            f"Sure! Here is the card you asked for:\n\n{text}\n\nLet me know if you need more.",
            "stop",
        ),
        (json.dumps(bad_icon, indent=2), "stop"),
        (text[: len(text) // 2], "length"),
        (json.dumps(wrong), "stop"),
        ("I'm sorry, I can't produce JSON for that.", "stop"),
        (
            text.replace('"value": "', "'value': '", 1).replace(
                '",\n    "desc', "',\n    \"desc", 1
            ),
            "stop",
        ),
    ]


def mixed_completions(prompt: str, index: int) -> tuple[str, str]:
    """The `index`-th completion for a prompt: cycles through good, fenced, chatty, bad icon,
    truncated, wrong title/value, refusal and broken JSON."""
    variants = _variants(prompt)
    return variants[index % len(variants)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when many requests arrive at once (the client
    # then retries a second later), which would hide the env's concurrency.
    request_queue_size = 128


# Broken answers `fail_next` can inject besides HTTP statuses.
FAULTS = ("not-json", "no-choices", "null-message", "reset")


class FakeOpenAIServer:
    """Threaded HTTP server; `completion_fn(prompt, index) -> (content, finish_reason)`."""

    def __init__(
        self,
        completion_fn: Callable[[str, int], tuple[str, str]] = mixed_completions,
        port: int = 0,
        honour_n: bool = True,
        identical_every: int = 0,
    ) -> None:
        self.completion_fn = completion_fn
        self.honour_n = honour_n
        self.identical_every = identical_every  # every k-th chat call: n identical choices
        self.identical_answers = 0  # how many chat calls were answered that way
        self.answered_at: dict[str, float] = {}  # user prompt -> time.time() of the last answer
        self.requests: list[dict[str, Any]] = []
        # What to answer the next chat calls with: an HTTP status (int) or one of FAULTS.
        self.fail_next: list[int | str] = []
        self.fail_seeds: set[int] = set()  # requests with one of these seeds get HTTP 500
        self.delay = 0.0  # seconds to sleep before answering a chat call
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, body: dict[str, Any]) -> tuple[int | str, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            if self.fail_next:
                return self.fail_next.pop(0), {"error": {"message": "injected failure"}}
            if body.get("seed") in self.fail_seeds:
                return 500, {"error": {"message": "injected failure for this seed"}}
            call = len(self.requests)
            identical = bool(self.identical_every) and call % self.identical_every == 0
            self.identical_answers += identical
        if self.delay:
            time.sleep(self.delay)
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        n = int(body.get("n") or 1) if self.honour_n else 1
        choices = []
        seed = body.get("seed")
        same = next(self._counter) if identical else None
        for i in range(n):
            if same is not None:
                index = same
            elif isinstance(seed, int):
                index = seed + i
            else:
                index = next(self._counter)
            content, finish = self.completion_fn(prompt, index)
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            )
        self.answered_at[prompt] = time.time()
        return 200, {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": choices,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and llama.cpp's server do

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if not isinstance(body, dict) or "messages" not in body:
                    # e.g. a request the client cancelled half-way (its timeout): not recorded
                    self.close_connection = True
                    self._send(400, {"error": {"message": "the request was not a chat request"}})
                    return
                status, payload = server._answer(body)
                if status == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif status == "not-json":
                    data = b"<html>502 Bad Gateway</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif status == "no-choices":
                    self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
                elif status == "null-message":
                    choice = {"index": 0, "message": None, "finish_reason": "stop"}
                    self._send(200, {"id": "x", "object": "chat.completion", "choices": [choice]})
                else:
                    assert isinstance(status, int)
                    self._send(status, payload)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument(
        "--identical-every",
        type=int,
        default=0,
        metavar="K",
        help="answer every K-th request with n identical completions (a group without score "
        "spread, which serve drops); 0 = never",
    )
    args = parser.parse_args()
    server = FakeOpenAIServer(port=args.port, identical_every=args.identical_every)
    server.delay = args.delay
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
