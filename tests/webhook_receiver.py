"""A real HTTP receiver for webhook tests: stdlib ThreadingHTTPServer on a free loopback port, in a thread.

It verifies every request's signature on the raw bytes (clients/webhook_verify.py) and answers from a script:
``fail_first=n`` answers ``fail_status`` to the first n requests, then 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from clients.webhook_verify import VerificationError, verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    verify_error: str | None
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    def __init__(self, secrets: list[str], *, fail_first: int = 0, fail_status: int = 500) -> None:
        self.secrets = secrets
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always_fail = False
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver._record(dict(self.headers.items()), body)
                payload = b'{"ok": %s}' % (b"true" if status == 200 else b"false")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        try:
            verify(body, headers, self.secrets)
            ok, err = True, None
        except VerificationError as exc:
            ok, err = False, exc.reason
        with self._lock:
            n = len(self.received)
            status = self.fail_status if (self.always_fail or n < self.fail_first) else 200
            if not ok:
                status = 401
            self.received.append(Received(headers, body, ok, err, status))
        return status

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def successes(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


async def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1,
                   what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail with ``what`` after ``timeout`` seconds."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
