"""A small asyncio TCP proxy in front of PostgreSQL that cuts connections on demand.

``PgProxy`` forwards every byte both ways and reads just enough of the PostgreSQL wire protocol
to know, per connection, whether a transaction is open (the status byte of ``ReadyForQuery``)
and which statement text the client runs (``Parse`` and simple ``Query`` messages; a prepared
statement is recognised again by its name on ``Bind``). With that it can:

- ``cut(refuse_s)``: drop every open connection at once (both sockets aborted: the client
  sees "server closed the connection unexpectedly", the server a reset and rolls back any open
  transaction) and refuse new connections for ``refuse_s`` seconds;
- ``cut_after(pattern, refuse_s, inspect)``: the same, at the moment a connection *inside a
  transaction* has run a statement whose text contains ``pattern`` and the server has answered
  it — the statement's writes are made, not committed: the sharpest "mid-transaction" there is.
  ``inspect`` (a coroutine function) runs right after the cut, while new connections are still
  refused (however long it takes): the test reads what is committed before anyone can retry.

Each cut is recorded (``cuts``) with how many connections it dropped and how many of them were
inside a transaction, so a test can tell the cut did happen where it meant it to. The proxy
answers a client's ``SSLRequest`` / ``GSSENCRequest`` itself with "N" (no encryption: the
bytes stay readable); everything else is passed on unchanged.
"""

import asyncio
import contextlib
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
IN_TRANSACTION = (b"T", b"E")  # ReadyForQuery: in a transaction block, or in a failed one


@dataclass
class Cut:
    """One cut: when, what triggered it, the connections dropped and how many were inside a
    transaction (the one that triggered it among them, for ``cut_after``); ``seen``: what the
    ``inspect`` of ``cut_after`` returned."""

    at: float
    trigger: str
    dropped: int
    in_transaction: int
    seen: Any = None


@dataclass
class _Trigger:
    pattern: bytes
    refuse_s: float
    inspect: Callable[[], Awaitable[Any]] | None
    done: "asyncio.Future[Cut]"


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    status: bytes = b"I"  # the last ReadyForQuery's transaction status
    ran: bytes = b""  # the text of the statement being run (Parse / Query / Bind of a prepared one)
    prepared: dict[bytes, bytes] = field(default_factory=dict)  # statement name → text

    def abort(self) -> None:
        for w in (self.client, self.server):
            if w is not None:
                w.transport.abort()


class PgProxy:
    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts: list[Cut] = []
        self.refused = 0  # connections refused while refusing
        self._links: set[_Link] = set()
        self._refuse_until = 0.0
        self._triggers: list[_Trigger] = []
        self._inspections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> "PgProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for t in self._triggers:
            t.done.cancel()
        for task in self._inspections:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> "PgProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- cutting ---

    def cut(self, refuse_s: float = 0.0, trigger: str = "now") -> Cut:
        """Drop every open connection now; refuse new ones for ``refuse_s`` seconds."""
        links = list(self._links)
        cut = Cut(time.monotonic(), trigger, len(links), sum(link.status in IN_TRANSACTION for link in links))
        self._refuse_until = time.monotonic() + refuse_s
        for link in links:
            link.abort()
        self._links.clear()
        self.cuts.append(cut)
        return cut

    def cut_after(
        self, pattern: bytes, refuse_s: float = 1.0, inspect: Callable[[], Awaitable[Any]] | None = None
    ) -> "asyncio.Future[Cut]":
        """Arm a cut (see the module docstring); the future is the cut, once it happened (and
        ``inspect`` ran). Several may be armed: each fires once, on the first statement that
        matches it."""
        done: asyncio.Future[Cut] = asyncio.get_running_loop().create_future()
        self._triggers.append(_Trigger(pattern, refuse_s, inspect, done))
        return done

    def _answered(self, link: _Link) -> None:
        """The server finished a request on ``link`` (ReadyForQuery): cut if a trigger matches."""
        if link.status not in IN_TRANSACTION or not link.ran:
            return
        for t in self._triggers:
            if t.pattern in link.ran:
                self._triggers.remove(t)
                cut = self.cut(t.refuse_s, trigger=t.pattern.decode(errors="replace"))
                if t.inspect is None:
                    t.done.set_result(cut)
                else:
                    self._refuse_until = math.inf
                    self._inspections.add(asyncio.create_task(self._inspect(cut, t)))
                return

    async def _inspect(self, cut: Cut, t: _Trigger) -> None:
        assert t.inspect is not None
        try:
            cut.seen = await t.inspect()
        except Exception as exc:  # noqa: BLE001 - the test hears of it through the future
            t.done.set_exception(exc)
        else:
            t.done.set_result(cut)
        finally:
            self._refuse_until = max(cut.at + t.refuse_s, time.monotonic())

    # --- forwarding ---

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            writer.transport.abort()
            return
        link = _Link(writer)
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._links.discard(link)
            writer.transport.abort()
            return
        link.server = up_writer
        if link not in self._links:  # cut while connecting
            link.abort()
            return
        pumps = [
            asyncio.create_task(self._client_to_server(link, reader, up_writer)),
            asyncio.create_task(self._server_to_client(link, up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            for p in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await p
            self._links.discard(link)
            link.abort()

    async def _client_to_server(self, link: _Link, reader: asyncio.StreamReader, up: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:  # the untyped start-up messages
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                rest = await reader.readexactly(length - 8)
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    link.client.write(b"N")  # no encryption: go on in the clear
                    await link.client.drain()
                    continue
                up.write(head + rest)
                await up.drain()
                if code == CANCEL_REQUEST:
                    return
                break
            while True:
                head = await reader.readexactly(5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                self._seen_from_client(link, kind, body)
                up.write(head + body)
                await up.drain()

    @staticmethod
    def _seen_from_client(link: _Link, kind: bytes, body: bytes) -> None:
        if kind == b"Q":  # simple query
            link.ran = body.rstrip(b"\0")
        elif kind == b"P":  # Parse: name \0 query \0 …
            name, _, rest = body.partition(b"\0")
            query = rest.partition(b"\0")[0]
            link.ran = query
            if name:
                link.prepared[name] = query
        elif kind == b"B":  # Bind: portal \0 statement \0 …
            _, _, rest = body.partition(b"\0")
            name = rest.partition(b"\0")[0]
            if name:
                link.ran = link.prepared.get(name, b"")

    async def _server_to_client(self, link: _Link, reader: asyncio.StreamReader, down: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind == b"Z":  # ReadyForQuery: the request is answered; the transaction status
                    link.status = body[:1]
                    self._answered(link)
                    if link not in self._links:  # cut: the client never hears the answer
                        return
                down.write(head + body)
                await down.drain()
