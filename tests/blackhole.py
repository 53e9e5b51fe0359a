"""A TCP proxy on loopback that can go silent: ``freeze()`` makes every connection open at
that moment stop forwarding in both directions while staying open, as when a peer's host
vanishes or a network path dies without a FIN or RST. Connections made afterwards forward
normally, so a client that reconnects gets through; ``hang()`` silences those too, as a
server that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class _Link:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.frozen = threading.Event()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.frozen.is_set():
                    continue  # read and dropped: the bytes never arrive
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not self.frozen.is_set():
                self.close()

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


class Blackhole:
    """``Blackhole(port)`` listens on 127.0.0.1 (``.target``) and forwards to ``port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._closed = False
        self._hanging = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._links)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            link = _Link(client, upstream)
            with self._lock:
                if self._hanging:
                    link.frozen.set()
                if self._closed:
                    link.close()
                    return
                self._links.append(link)
            threading.Thread(target=link.pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=link.pump, args=(upstream, client), daemon=True).start()

    def freeze(self) -> None:
        """Every connection open now goes silent, both ways, and stays open."""
        with self._lock:
            for link in self._links:
                link.frozen.set()

    def hang(self) -> None:
        """Every connection, open now or made later, is silent."""
        with self._lock:
            self._hanging = True
        self.freeze()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links = list(self._links)
        self._listener.close()
        for link in links:
            link.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
