"""A loopback TCP proxy that adds a fixed round-trip delay, for benchmarks.

    with RttProxy("127.0.0.1", workerd_port, rtt_ms=10) as proxy:
        ...  # connect to 127.0.0.1:proxy.port instead: every round trip takes >= 10 ms more

Each direction delivers every chunk it reads ``rtt_ms / 2`` after reading it, in order, so
the delay is pure latency: chunks in flight overlap and throughput is not capped. It binds
127.0.0.1 only, runs its own event loop in a daemon thread, serves at most
``MAX_CONNECTIONS`` connections at once (more wait), holds at most ``QUEUE_CHUNKS`` chunks in
flight per direction (the reader then waits), and stops, closing every connection, when the
``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

MAX_CONNECTIONS = 64
QUEUE_CHUNKS = 256
CHUNK_BYTES = 64 * 1024


class RttProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host:upstream_port``, delaying each direction."""

    def __init__(self, upstream_host: str, upstream_port: int, rtt_ms: float):
        if rtt_ms < 0:
            raise ValueError(f"rtt_ms must be >= 0, not {rtt_ms}")
        self.upstream = (upstream_host, upstream_port)
        self.one_way = rtt_ms / 2000  # seconds each direction adds
        self.port = 0
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> RttProxy:
        self._thread = threading.Thread(target=self._run, name="rtt-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None or not self.port:
            raise RuntimeError(f"the RTT proxy did not start: {self._error!r}")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__ if it happens before ready
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        slots = asyncio.Semaphore(MAX_CONNECTIONS)
        tasks: set[asyncio.Task] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            tasks.add(task)
            try:
                async with slots:
                    await self._forward(reader, writer)
            except asyncio.CancelledError:
                pass  # the proxy is stopping; asyncio's stream callback would log it as an error
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(self, client_reader, client_writer) -> None:
        """Pump both directions of one connection until both have ended or one has failed."""
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        try:
            pumps = [asyncio.create_task(self._pump(client_reader, upstream_writer)),
                     asyncio.create_task(self._pump(upstream_reader, client_writer))]
            try:
                # A half-close passes through (the other direction goes on); an error ends both.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``one_way`` seconds after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # end of stream
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                await queue.put((loop.time() + self.one_way, data))
                if not data:
                    break
            await delivering
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await delivering
