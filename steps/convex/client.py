"""A small client for a Convex deployment's HTTP APIs, for the convex.* step kinds.

Authenticates with `Authorization: Convex <deploy key>` (admin: may call internal functions).
Retries 429 (after Retry-After), 5xx and dropped connections with doubling delays, waiting on
the step's cancellation event. A request that is not safe to repeat (finishing an upload)
raises `Ambiguous` when its fate is unknown, so the caller can look before trying again.
Function results are read from the body whenever the status is 200 or 560 (a function error).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import queue
import random
import re
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from pydantic_core import from_json

from cockpit.step_api import COCKPIT_VERSION, StepCancelled

FUNCTION_ERROR_STATUS = 560
_decode_json = msgspec.json.Decoder().decode


class ConvexError(Exception):
    """The deployment refused a request ({code, message}), or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConvexFunctionError(ConvexError):
    """A function threw: `status: "error"` in the body."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


_MISSING_INDEX = re.compile(r"Index ([^\s.]+)\.(\w+) not found\.")


def missing_index_hint(message: str) -> str:
    """What an operator can do about Convex's IndexNotFoundError, which names neither cause: a
    table that does not exist in the deployment has no index at all, and one that does may lack
    the index convex/cockpit.ts asks for."""
    match = _MISSING_INDEX.search(message)
    if match is None:
        return ""
    table, index = match.group(1), match.group(2)
    if index == "by_creation_time":  # every table that exists has it
        return f" (there is no table {table} in this deployment: was it imported?)"
    return (
        f" (there is no table {table} in this deployment, or its schema has no index {index}:"
        f" import the table, or give it the index as convex/cockpit.ts says)"
    )


class Ambiguous(ConvexError):
    """The request may or may not have taken effect: the connection dropped after it was sent."""


def decode(value: Any) -> Any:
    """Convex's JSON value encoding to Python: $integer (Int64), $float, $bytes."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$integer" and isinstance(inner, str):
                return struct.unpack("<q", base64.b64decode(inner))[0]
            if key == "$float" and isinstance(inner, str):
                return struct.unpack("<d", base64.b64decode(inner))[0]
            if key == "$bytes" and isinstance(inner, str):
                return base64.b64decode(inner)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


@dataclass
class Chain:
    """One share of a table by creation time (`start` inclusive, `end` exclusive, None: open),
    read as its own chain of pages from `cursor` (None: its start); `done` after its last page."""

    start: float | None = None
    end: float | None = None
    cursor: str | None = None
    done: bool = False


def shares_for(parallel: int, entry: dict[str, Any] | None, size: int) -> int:
    """As many shares as asked, but no more than the table has pages of `size` (when the
    transform's manifest `entry` says how many documents it holds)."""
    if entry and entry.get("output_rows") is not None:
        return max(1, min(parallel, -(-int(entry["output_rows"]) // size)))
    return parallel


class ConvexClient:
    def __init__(
        self,
        url: str,
        deploy_key: str,
        *,
        cancel: threading.Event | None = None,
        log: Callable[[str], None] | None = None,
        attempts: int = 8,
        timeout: float = 60.0,
        max_delay: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._cancel = cancel or threading.Event()
        self._log = log or (lambda text: None)
        self._attempts = attempts
        self._max_delay = max_delay
        self._random = random.Random()
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Convex {deploy_key}", "Convex-Client": f"cutover-cockpit-{COCKPIT_VERSION}"},
        )
        self.retries = 0
        # Requests run on this thread while the step's thread waits for them or for a cancel:
        # a cancelled step stops at once, not when a slow upload or a long poll ends.
        # Several: a step may send from several threads at once (httpx.Client allows it).
        self._sender = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="convex-request")
        self._abandoned = False

    def close(self) -> None:
        self._sender.shutdown(wait=not self._abandoned, cancel_futures=True)
        if not self._abandoned:  # an abandoned request still uses the client; it ends with its timeout
            self._http.close()

    def __enter__(self) -> ConvexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            raise StepCancelled("cancelled while waiting to retry")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        repeatable: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying what can be retried; raise ConvexError (or Ambiguous) otherwise."""
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            if self._cancel.is_set():
                raise StepCancelled("cancelled")
            try:
                response = self._send(method, path, json=json, content=content, params=params, headers=headers)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if sent and not repeatable:
                    raise Ambiguous(
                        f"{method} {path}: the connection dropped after the request was sent ({type(exc).__name__})"
                    ) from exc
                if attempt == self._attempts:
                    raise ConvexError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                self._retrying(f"{type(exc).__name__}", attempt, delay)
                self._wait(delay + self._random.uniform(0, delay / 5))
                delay = min(delay * 2, self._max_delay)
                continue
            server_error = response.status_code >= 500 and response.status_code != FUNCTION_ERROR_STATUS
            if response.status_code == 429 or server_error:
                if attempt == self._attempts:
                    raise ConvexError(
                        f"{method} {path}: HTTP {response.status_code} after {attempt} attempts",
                        status=response.status_code,
                    )
                wait = delay
                retry_after = response.headers.get("Retry-After")
                if response.status_code == 429 and retry_after:
                    with contextlib.suppress(ValueError):  # an HTTP date: keep our own delay
                        wait = max(float(retry_after), 0.0)
                self._retrying(f"HTTP {response.status_code}", attempt, wait)
                self._wait(wait + self._random.uniform(0, wait / 5))
                delay = min(delay * 2, self._max_delay)
                continue
            if response.status_code >= 400 and response.status_code != FUNCTION_ERROR_STATUS:
                code, message = _error_body(response)
                raise ConvexError(
                    f"{method} {path}: HTTP {response.status_code} {code}: {message}",
                    status=response.status_code,
                    code=code,
                )
            return response
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        future = self._sender.submit(self._http.request, method, path, **options)
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if self._cancel.is_set():
                    self._abandoned = True
                    raise StepCancelled(f"cancelled during {method} {path}") from None

    def _retrying(self, what: str, attempt: int, wait: float) -> None:
        self.retries += 1
        self._log(f"[convex] {what}; retrying in {wait:.1f}s (attempt {attempt + 1} of {self._attempts})")

    # -- the Functions API -----------------------------------------------------------------------

    def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
        """Run a query, mutation or action; return its value, or raise ConvexFunctionError.

        Asked as Convex's own clients ask: positional arguments and the encoded answer format,
        in which an Int64, bytes and the floats JSON cannot write keep their types (the plain
        `json` format would give an Int64 as decimal text and NaN as its name)."""
        request_body = {"path": path, "args": [args or {}], "format": "convex_encoded_json"}
        response = self.request("POST", f"/api/{kind}", json=request_body)
        content = response.content
        try:
            # msgspec: the quickest parser of a page of documents here (pydantic's, then json's).
            body = _decode_json(content)
        except (msgspec.DecodeError, RecursionError):
            try:  # what msgspec refuses (NaN, say), pydantic's parser may still read
                body = from_json(content)
            except ValueError as exc:
                raise ConvexError(f"{kind} {path}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ConvexError(f"{kind} {path}: unexpected answer {str(body)[:200]}")
        # Only an object with a "$..." key ($integer, $float, $bytes) needs decoding; the text
        # says whether there may be one (a false alarm costs only the walk).
        encoded = b'"$' in content or b"\\u0024" in content
        if body.get("status") == "success":
            return decode(body.get("value")) if encoded else body.get("value")
        if body.get("status") == "error":
            raise ConvexFunctionError(
                f"{path}: {body.get('errorMessage')}{missing_index_hint(str(body.get('errorMessage')))}",
                decode(body.get("errorData")) if encoded else body.get("errorData"),
            )
        raise ConvexError(f"{kind} {path}: unexpected answer {str(body)[:200]}")

    def query(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return self.call("query", path, args)

    def mutation(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return self.call("mutation", path, args)

    def action(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return self.call("action", path, args)

    def pages(
        self, kind: str, path: str, args: dict[str, Any], num_items: int, cursor: str | None = None
    ) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Call a paged function (`cursor`, `numItems` in; `isDone`, `continueCursor` out) to the end.

        Yields each page's value with the cursor that starts the next page (None after the
        last), so a caller can checkpoint it and resume there.
        """
        while True:
            if self._cancel.is_set():
                raise StepCancelled("cancelled")
            value = self.call(kind, path, {**args, "cursor": cursor, "numItems": num_items})
            if not isinstance(value, dict) or "isDone" not in value:
                raise ConvexError(f"{path} did not answer a page (isDone, continueCursor): {str(value)[:200]}")
            cursor = None if value["isDone"] else str(value["continueCursor"])
            yield value, cursor
            if cursor is None:
                return

    def pages_in_shares(
        self, kind: str, path: str, args: dict[str, Any], num_items: int, shares: int
    ) -> Iterator[dict[str, Any]]:
        """Every page of a paged function (`module:name`) over `args["table"]`, read as `shares`
        shares of the table's creation times at once, each paged on its own (the function takes
        `from` and `before`); the values come in the order they arrive.

        One chain of pages waits a round trip per page; a few chains read a large table that
        many times faster. `timeSpan` of the same module (the table's first and last
        _creationTime) says where to cut. When it fails (a deployment with older functions) or
        the table is tiny, one chain reads it all, as `pages` does.
        """
        chains = self.share_chains(args["table"], shares, path)
        yield from (value for _index, value, _cursor in self.pages_of_chains(kind, path, args, num_items, chains))

    def pages_of_chains(
        self, kind: str, path: str, args: dict[str, Any], num_items: int, chains: list[Chain]
    ) -> Iterator[tuple[int, dict[str, Any], str | None]]:
        """Every page of each chain that is not done, from its cursor on, the chains read at
        once: (the chain's index, the page's value, the cursor that starts its next page, None
        after its last) in the order they arrive, so a caller can checkpoint each chain."""

        def share_args(chain: Chain) -> dict[str, Any]:
            return {
                **args,
                **({} if chain.start is None else {"from": chain.start}),
                **({} if chain.end is None else {"before": chain.end}),
            }

        running = [(index, chain) for index, chain in enumerate(chains) if not chain.done]
        if not running:
            return
        if len(running) == 1:  # no thread for one chain
            index, chain = running[0]
            for value, cursor in self.pages(kind, path, share_args(chain), num_items, chain.cursor):
                yield index, value, cursor
            return
        arrived: queue.SimpleQueue[tuple[str, int, Any, str | None]] = queue.SimpleQueue()
        stop = threading.Event()

        def read_chain(index: int, chain: Chain) -> None:
            try:
                for value, cursor in self.pages(kind, path, share_args(chain), num_items, chain.cursor):
                    arrived.put(("page", index, value, cursor))
                    if stop.is_set():
                        break
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, raised there
                arrived.put(("error", index, exc, None))
                return
            arrived.put(("done", index, None, None))

        with concurrent.futures.ThreadPoolExecutor(len(running), thread_name_prefix="convex-share") as pool:
            for index, chain in running:
                pool.submit(read_chain, index, chain)
            try:
                left = len(running)
                while left:
                    what, index, item, cursor = arrived.get()
                    if what == "error":
                        raise item
                    if what == "done":
                        left -= 1
                    else:
                        yield index, item, cursor
            finally:
                stop.set()  # the other chains end after their current page

    def share_chains(self, table: str, shares: int, path: str) -> list[Chain]:
        """A table cut into `shares` chains by creation time, for the paged function `path` (its
        module's `timeSpan` reads the table's first and last _creationTime). The first and last
        are open at their ends, so that a document created after the span was read is still read
        (in the last share). One chain, the whole table, when one is asked, the table is tiny or
        the module has no timeSpan."""
        bounds = self._share_bounds(table, shares, path) if shares > 1 else [None, None]
        return [Chain(start, end) for start, end in zip(bounds, bounds[1:], strict=False)]

    def _share_bounds(self, table: str, shares: int, path: str) -> list[float | None]:
        span_path = f"{path.rpartition(':')[0]}:timeSpan"
        try:
            span = self.query(span_path, {"table": table})
        except ConvexFunctionError as exc:
            self._log(
                f"[convex] {table}: read in one chain ({exc}; deploy the current convex/cockpit.ts to read "
                "it in shares)"
            )
            return [None, None]
        first, last = span.get("first"), span.get("last")
        if not isinstance(first, int | float) or not isinstance(last, int | float) or last <= first:
            return [None, None]
        step = (last - first) / shares
        return [None, *(first + step * i for i in range(1, shares)), None]

    # -- snapshot import (the protocol of `npx convex import`) --------------------------------------

    def start_upload(self) -> str:
        return str(self.request("POST", "/api/import/start_upload").json()["uploadToken"])

    def upload_part(self, upload_token: str, part_number: int, data: bytes) -> str:
        response = self.request(
            "POST",
            "/api/import/upload_part",
            content=data,
            params={"uploadToken": upload_token, "partNumber": part_number},
            headers={"Content-Type": "application/octet-stream"},
        )
        return str(response.json())

    def finish_upload(self, table: str, mode: str, upload_token: str, part_tokens: list[str]) -> str:
        body = {
            "import": {"tableName": table, "mode": mode, "format": "jsonLines"},
            "uploadToken": upload_token,
            "partTokens": part_tokens,
        }
        return str(self.request("POST", "/api/import/finish_upload", json=body, repeatable=False).json()["importId"])

    def import_state(self, import_id: str) -> dict[str, Any]:
        value = self.query("_system/cli/queryImport", {"importId": import_id})
        state: dict[str, Any] = value["state"]
        return state

    def list_imports(self) -> list[dict[str, Any]]:
        value = self.query("_system/cli/queryImport:list", {})
        return list(value)

    def perform_import(self, import_id: str) -> None:
        self.request("POST", "/api/perform_import", json={"importId": import_id})


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if isinstance(body, dict):
        return str(body.get("code", "")), str(body.get("message", body))
    return "", str(body)[:200]
