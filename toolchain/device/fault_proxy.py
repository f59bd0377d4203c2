"""A fault-injecting TCP proxy for testing the device link: 127.0.0.1:PORT (give pyserial
``proxy.url``) joined to a device's TCP serial port (QEMU ``-serial tcp:...``), flipping one bit
of a byte, dropping a byte or inserting a random byte after it, each with its own probability
per byte, in both directions, from a seeded RNG. ``retarget(port)`` moves it to another backend
(a board restarted on a new port) while the client stays connected.

    with FaultProxy(qemu.port, flip=0.01, drop=0.005, insert=0.002, seed=1) as proxy:
        link = DeviceLink.open(proxy.url)
"""

from __future__ import annotations

import random
import select
import socket
import threading
from types import TracebackType


class FaultProxy:
    def __init__(self, backend_port: int, flip: float = 0.0, drop: float = 0.0,
                 insert: float = 0.0, seed: int = 0) -> None:
        self.flip, self.drop, self.insert = flip, drop, insert
        self.rng = random.Random(seed)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.counts = {"bytes": 0, "flipped": 0, "dropped": 0, "inserted": 0, "lost": 0,
                       "backends": 0}
        self._backend_port = backend_port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")
        self._thread.start()

    def retarget(self, backend_port: int) -> None:
        """Connect to another backend from now on (the old connection is dropped)."""
        with self._lock:
            self._backend_port = backend_port

    def mangle(self, data: bytes) -> bytes:
        out = bytearray()
        rng, c = self.rng, self.counts
        for b in data:
            c["bytes"] += 1
            r = rng.random()
            if r < self.drop:
                c["dropped"] += 1
                continue
            if r < self.drop + self.flip:
                b ^= 1 << rng.randrange(8)
                c["flipped"] += 1
            out.append(b)
            if rng.random() < self.insert:
                out.append(rng.randrange(256))
                c["inserted"] += 1
        return bytes(out)

    def _connect(self, port: int) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            return None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counts["backends"] += 1
        return s

    def _run(self) -> None:
        client: socket.socket | None = None
        backend: socket.socket | None = None
        port = None
        while not self._stop.is_set():
            with self._lock:
                want = self._backend_port
            if backend is not None and port != want:
                backend.close()
                backend = None
            if backend is None and client is not None:  # the client hears the boot banner
                backend, port = self._connect(want), want
            socks = [s for s in (self.server, client, backend) if s is not None]
            ready, _, _ = select.select(socks, [], [], 0.05)
            if self.server in ready:
                if client is not None:
                    client.close()
                client, _ = self.server.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for src in (client, backend):
                if src is None or src not in ready:
                    continue
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                dst = backend if src is client else client
                if not data:  # that side went away
                    src.close()
                    if src is client:
                        client = None
                    else:
                        backend = None
                    continue
                if dst is None:
                    self.counts["lost"] += len(data)
                    continue
                try:
                    dst.sendall(self.mangle(data))
                except OSError:
                    self.counts["lost"] += len(data)
        for s in (client, backend, self.server):
            if s is not None:
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
