"""A fault-injecting TCP proxy for the fault tests: asyncio, in a thread of the test process.

Modes, switched at any time with :meth:`FaultProxy.set_mode`:

* ``pass``: forward every byte both ways to the upstream server;
* ``refuse``: the listening socket is closed, so new connections get ECONNREFUSED, and live ones are reset;
* ``blackhole``: connections are accepted and their bytes read and dropped, nothing ever comes back; live
  forwarded connections are cut (reset) so that keep-alive clients see the outage at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Literal

logger = logging.getLogger(__name__)

Mode = Literal["pass", "refuse", "blackhole"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or _free_port()
        self.mode: Mode = "pass"
        self.accepted = 0
        self.refused_while_cut = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{self.port}", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set_mode(self, mode: Mode) -> None:
        self._call(self._switch(mode))
        logger.info("proxy %d -> %s:%d now %s", self.port, *self.upstream, mode)

    def _call(self, coro: object, timeout: float = 10.0) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _shutdown(self) -> None:
        self._cut_live()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _switch(self, mode: Mode) -> None:
        self.mode = mode
        if mode != "pass":
            self._cut_live()
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self._listen()

    def _cut_live(self) -> None:
        for writer in list(self._live):
            writer.transport.abort()
        self._live.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "blackhole":
            self._live.add(writer)
            try:
                while await reader.read(65536):
                    pass
            except (ConnectionError, OSError):
                pass
            finally:
                self._live.discard(writer)
                writer.transport.abort()
            return
        if self.mode == "refuse":
            self.refused_while_cut += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._live.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._live.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode != "pass":
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            if not writer.transport.is_closing():
                writer.transport.abort()
