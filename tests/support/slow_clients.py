"""Slow clients on loopback: connections that send a request head one header line at a time
(slowloris), or a valid request's body one byte at a time, every few seconds, without end.
A connection the server closes is opened again at once, so the pressure never lets up."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Slow:
    sock: socket.socket
    kind: str  # "head" or "body"
    due: float
    sent: int = 0


@dataclass
class SlowClients:
    host: str
    port: int
    heads: int  # connections trickling header lines
    bodies: int  # connections trickling a 16,000-byte body
    interval: float = 3.0  # seconds between two trickles of one connection
    opened: int = 0
    closed_by_server: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _open(self, kind: str) -> _Slow:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        host = f"{self.host}:{self.port}"
        if kind == "head":
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
        else:
            sock.sendall(
                f"POST /api/v1/usage-analytics HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n".encode()
            )
        sock.setblocking(False)
        self.opened += 1
        return _Slow(sock, kind, time.monotonic() + self.interval)

    def _run(self) -> None:
        clients = [self._open("head") for _ in range(self.heads)]
        clients += [self._open("body") for _ in range(self.bodies)]
        while not self._stop.wait(0.05):
            now = time.monotonic()
            for n, client in enumerate(clients):
                if client.due > now:
                    continue
                try:
                    if client.sock.recv(4096) == b"":  # closed (or answered): start again
                        raise ConnectionResetError
                except BlockingIOError:  # nothing from the server: keep trickling
                    client.sent += 1
                    bit = f"X-Slow-{client.sent}: x\r\n".encode() if client.kind == "head" else b" "
                    try:
                        client.sock.sendall(bit)
                        client.due = now + self.interval
                        continue
                    except OSError:
                        pass
                except OSError:
                    pass
                client.sock.close()
                self.closed_by_server += 1
                clients[n] = self._open(client.kind)
        for client in clients:
            client.sock.close()
