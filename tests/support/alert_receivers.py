"""Real alert receivers on loopback for the delivery tests: an HTTP server that records each
webhook request and answers like the service of its path, and an SMTP server (aiosmtpd)
that records each message and checks a login."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: what each flavour answers when it accepts a message
ACCEPTED: dict[str, bytes] = {
    "webhook": b"{}",
    "slack": b"ok",
    "feishu": b'{"code":0,"msg":"success","data":{}}',
    "wecom": b'{"errcode":0,"errmsg":"ok"}',
    "dingtalk": b'{"errcode":0,"errmsg":"ok"}',
}


@dataclass
class WebhookRecorder:
    """Requests by path (``/<flavour>/<token>``); ``fail_first[path]`` answers 500 that many
    times first."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.get(path, []))


@contextmanager
def webhook_receiver() -> Iterator[WebhookRecorder]:
    recorder = WebhookRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            flavour = self.path.strip("/").split("/")[0]
            with recorder.lock:
                n = recorder.attempts.get(self.path, 0) + 1
                recorder.attempts[self.path] = n
                failing = n <= recorder.fail_first.get(self.path, 0)
                if not failing:
                    recorder.received.setdefault(self.path, []).append(json.loads(body))
            answer = b"busy" if failing else ACCEPTED.get(flavour, b"{}")
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MailRecorder:
    messages: list[Message] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0


@contextmanager
def smtp_receiver(*, username: str, password: str) -> Iterator[MailRecorder]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    recorder = MailRecorder()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            recorder.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (username, password)
        if ok:
            recorder.logins.append((username, "ok"))
        return AuthResult(success=ok)

    with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        recorder.port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=recorder.port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield recorder
    finally:
        controller.stop()
