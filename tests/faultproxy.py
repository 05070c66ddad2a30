"""A fault-injecting TCP proxy for serial-over-TCP links (tests only).

Sits between a client (the harvester) and a TCP serial server (QEMU's UART): corrupts and drops
bytes on the way to the client, optionally on the way to the device too, and cuts the connection once
after a given number of delivered bytes. Everything actually delivered to the client is kept in
``delivered`` so a test can compare it with the client's raw.log.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time


class FaultProxy:
    def __init__(self, upstream_port: int, *, corrupt: float = 0.0, drop: float = 0.0, cut_after: int | None = None,
                 up_corrupt: float = 0.0, up_drop: float = 0.0, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.corrupt, self.drop = corrupt, drop
        self.up_corrupt, self.up_drop = up_corrupt, up_drop
        self.cut_after = cut_after
        self.rng = random.Random(seed)
        self.delivered = bytearray()
        self.corrupted = 0
        self.dropped = 0
        self.cuts = 0
        self.connections = 0
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._srv.close()
        self._thread.join(5)

    def _mangle(self, data: bytes, corrupt: float, drop: float) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < drop:
                self.dropped += 1
                continue
            if r < drop + corrupt:
                self.corrupted += 1
                b ^= self.rng.randrange(1, 256)
            out.append(b)
        return bytes(out)

    def _upstream(self) -> socket.socket:
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._srv], [], [], 0.1)
                if not r:
                    continue
                client, _ = self._srv.accept()
            except OSError:
                return
            self.connections += 1
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up = self._upstream()
            try:
                self._pump(client, up)
            finally:
                client.close()
                up.close()

    def _pump(self, client: socket.socket, up: socket.socket) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([client, up], [], [], 0.1)
            for s in r:
                try:
                    data = s.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                if s is up:
                    out = self._mangle(data, self.corrupt, self.drop)
                    cut_due = self.cut_after is not None and len(self.delivered) + len(out) >= self.cut_after
                    if cut_due and not self.cuts:
                        keep = out[: self.cut_after - len(self.delivered)]
                        client.sendall(keep)
                        self.delivered += keep
                        self.cuts += 1
                        return  # the cable is pulled: both sockets close
                    client.sendall(out)
                    self.delivered += out
                else:
                    up.sendall(self._mangle(data, self.up_corrupt, self.up_drop))
