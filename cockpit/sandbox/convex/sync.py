"""The Convex stand-in's sync WebSocket (`GET /api/<version>/sync`), as far as Convex's clients
need it to follow a query: `npx convex import` subscribes to `_system/cli/queryImport` over it
and waits for the import's state to settle.

Convex's sync protocol (the `convex` npm package, `browser/sync/protocol.ts`): the client sends
`Connect`, `Authenticate` (the admin key travels here, inside the protocol, not as a header of
the upgrade), `ModifyQuerySet` (queries added and removed), and may send `Mutation` and
`Action`; the server answers with `Transition`s from one state version (query set, identity,
timestamp) to the next, each carrying the values of the queries that changed, `AuthError`,
`MutationResponse` and `ActionResponse`. The WebSocket itself is the `websockets` library's
protocol, driven over the connection that asked for the upgrade.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from cockpit.sandbox.convex.values import ENCODED, encode

# How often the subscribed queries are run again to see whether their values changed.
POLL_SECONDS = 0.1

# A function call as the server runs it: (kind, path, args) -> (HTTP status, answer).
Run = Callable[[str, str, Any], tuple[int, dict[str, Any]]]


def _ts(value: int) -> str:
    """A timestamp as the protocol writes a u64: base64 of its 8 little-endian bytes."""
    return base64.b64encode(struct.pack("<Q", value)).decode()


@dataclass
class _Subscription:
    path: str
    args: Any
    last: str | None = None  # the last value sent, as JSON text


@dataclass
class SyncSession:
    """One client's connection."""

    run: Run
    deploy_key: str
    query_set: int = 0
    identity: int = 0
    ts: int = 0
    authenticated: bool = False
    queries: dict[int, _Subscription] = field(default_factory=dict)

    def handle(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The server's answers to one client message."""
        kind = message.get("type")
        if kind == "Authenticate":
            if message.get("tokenType") != "Admin" or message.get("value") != self.deploy_key:
                return [
                    {
                        "type": "AuthError",
                        "error": "The provided admin key was invalid for this instance",
                        "baseVersion": message.get("baseVersion", self.identity),
                        "authUpdateAttempted": True,
                    }
                ]
            self.authenticated = True
            return [self._transition(identity=self.identity + 1, force=True)]
        if kind == "ModifyQuerySet":
            for change in message.get("modifications", []):
                if change.get("type") == "Add":
                    args = change.get("args") or [{}]
                    self.queries[change["queryId"]] = _Subscription(change["udfPath"], args[0] if args else {})
                elif change.get("type") == "Remove":
                    self.queries.pop(change.get("queryId"), None)
            return [self._transition(query_set=message.get("newVersion", self.query_set + 1), force=True)]
        if kind in ("Mutation", "Action"):
            args = (message.get("args") or [{}])[0]
            _status, answer = self.run(kind.lower(), message.get("udfPath", ""), args)
            response: dict[str, Any] = {
                "type": f"{kind}Response",
                "requestId": message.get("requestId"),
                "logLines": [],
            }
            if answer.get("status") == "success":
                response.update(success=True, result=encode(answer.get("value"), ENCODED))
                if kind == "Mutation":
                    self.ts += 1
                    response["ts"] = _ts(self.ts)
            else:
                response.update(success=False, result=answer.get("errorMessage", "failed"))
            return [response]
        return []  # Connect, Event: nothing to answer

    def changes(self) -> list[dict[str, Any]]:
        """A transition when a subscribed query's value changed since it was last sent."""
        transition = self._transition()
        return [transition] if transition["modifications"] else []

    def _transition(self, *, query_set: int | None = None, identity: int | None = None, force: bool = False) -> Any:
        start = {"querySet": self.query_set, "identity": self.identity, "ts": _ts(self.ts)}
        modifications = []
        for query_id, subscription in self.queries.items():
            update = self._evaluate(query_id, subscription)
            text = json.dumps(update, sort_keys=True)
            if force or text != subscription.last:
                subscription.last = text
                modifications.append(update)
        self.query_set = self.query_set if query_set is None else query_set
        self.identity = self.identity if identity is None else identity
        self.ts += 1
        end = {"querySet": self.query_set, "identity": self.identity, "ts": _ts(self.ts)}
        return {"type": "Transition", "startVersion": start, "endVersion": end, "modifications": modifications}

    def _evaluate(self, query_id: int, subscription: _Subscription) -> dict[str, Any]:
        if not self.authenticated:
            status, answer = 200, {"status": "error", "errorMessage": "Unauthenticated: admin key required"}
        else:
            status, answer = self.run("query", subscription.path, subscription.args)
        if answer.get("status") == "success":
            value = encode(answer.get("value"), ENCODED)
            return {"type": "QueryUpdated", "queryId": query_id, "value": value, "logLines": [], "journal": None}
        return {
            "type": "QueryFailed",
            "queryId": query_id,
            "errorMessage": str(answer.get("errorMessage") or answer.get("message") or f"status {status}"),
            "logLines": [],
            "errorData": None,
            "journal": None,
        }


def serve_sync(request: BaseHTTPRequestHandler, run: Run, deploy_key: str, stopping: Callable[[], bool]) -> None:
    """Take over the connection of an upgrade request and speak the sync protocol on it."""
    protocol = ServerProtocol()
    head = f"{request.requestline}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    protocol.receive_data(head.encode("latin-1"))
    events = protocol.events_received()
    if not events or not isinstance(events[0], Request):
        return
    protocol.send_response(protocol.accept(events[0]))
    connection: socket.socket = request.connection
    session = SyncSession(run, deploy_key)

    def flush() -> None:
        for data in protocol.data_to_send():
            if data:
                connection.sendall(data)

    def send(messages: list[dict[str, Any]]) -> None:
        if protocol.state is not State.OPEN:  # the client is closing: nothing more to tell it
            return
        for message in messages:
            protocol.send_text(json.dumps(message).encode())
        flush()

    flush()
    request.close_connection = True
    connection.settimeout(POLL_SECONDS)
    polled = time.monotonic()
    while not stopping():
        try:
            data = connection.recv(65536)
        except TimeoutError:
            data = None
        except OSError:
            return
        if data == b"":
            protocol.receive_eof()
            flush()
            return
        if data:
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    answers = session.handle(json.loads(bytes(event.data)))
                    send(answers)
                    if any(answer["type"] == "AuthError" for answer in answers):
                        # As Convex does: the refusal, then a close frame without a code.
                        protocol.send_close()
                        flush()
                        return
            flush()
            if protocol.state is not State.OPEN:
                return
        if time.monotonic() - polled >= POLL_SECONDS:
            polled = time.monotonic()
            send(session.changes())
