"""The Convex stand-in's document storage: SQLite, Convex-shaped ids, `_creationTime`.

Documents keep Convex's default order (by `_creationTime`), pages come with an opaque cursor,
and each table has the `by_legacy_id` index the shipped functions use. Thread-safe.

Writes go through one connection, one transaction at a time. Reads outside a transaction take
a connection of their own from a pool, so that queries run side by side, as Convex runs them:
SQLite releases the interpreter while it computes, and WAL lets readers see every committed
write while a writer works. A read inside a transaction uses the writer's connection, so that
a mutation sees its own writes.

Which SQLite it stores with, and how, is in `cockpit.sandbox.convex.sqlite`.
"""

from __future__ import annotations

import base64
import json
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cockpit.sandbox.convex.sqlite import best_engine, connect, has_jsonb

# Convex ids are 32 characters of lowercase Crockford base32.
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


# Each random byte to one of the 32 letters (256 is a multiple of 32: no letter is favoured).
_LETTER_OF_BYTE = bytes(_ID_ALPHABET.encode()[b % 32] for b in range(256))


def new_id() -> str:
    """32 characters of Convex's id alphabet, 160 random bits."""
    return secrets.token_bytes(32).translate(_LETTER_OF_BYTE).decode()


# A share of a table by creation time: (from, inclusive; before, exclusive), either open (None).
Share = tuple[float | None, float | None]


@dataclass(frozen=True)
class Page:
    documents: list[dict[str, Any]]
    is_done: bool
    continue_cursor: str


@dataclass(frozen=True)
class PageMeta:
    """A page without its documents: what a function that computes in SQL returns about it."""

    count: int
    is_done: bool
    continue_cursor: str


class DocumentStore:
    def __init__(self, path: Path, engine: ModuleType | None = None) -> None:
        self._path = path
        self._engine = engine or best_engine()
        self.jsonb = has_jsonb(self._engine)
        # How a body is written, and read back as text: JSONB goes in and out through SQLite.
        self._stored = "jsonb(?)" if self.jsonb else "?"
        self._body = "json(body)" if self.jsonb else "body"
        self._db = connect(self._engine, path, 262144)
        self._db.executescript("""
            -- body: the document without _id and _creationTime, as JSONB or (SQLite < 3.45) JSON text.
            CREATE TABLE IF NOT EXISTS documents (
                tbl TEXT NOT NULL, id TEXT PRIMARY KEY, ct REAL NOT NULL, legacy_id TEXT, body BLOB NOT NULL
            );
            CREATE INDEX IF NOT EXISTS by_order ON documents (tbl, ct, id);
            -- With ct in it, the index serves `ORDER BY ct LIMIT 1` too: otherwise SQLite walks by_order.
            CREATE INDEX IF NOT EXISTS by_legacy_id ON documents (tbl, legacy_id, ct);
            -- The tables that exist: in Convex a table exists once created, empty or not.
            CREATE TABLE IF NOT EXISTS tables (tbl TEXT PRIMARY KEY);
        """)
        self._lock = threading.RLock()
        self._last_ct = 0.0
        self._writing = threading.local()  # .depth: this thread's open transactions
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with: the writer's inside a transaction, else one of the pool."""
        if getattr(self._writing, "depth", 0):
            with self._lock:
                yield self._db
            return
        try:
            db = self._readers.get_nowait()
        except queue.Empty:
            with self._readers_lock:  # not the writer's lock: a long transaction must not hold up reads
                if self._closed:
                    raise self._engine.ProgrammingError("the store is closed") from None
                # The memory map is shared by all; each reader keeps a smaller cache of its own.
                db = connect(self._engine, self._path, 65536)
                db.execute("PRAGMA query_only=ON")
                self._all_readers.append(db)
        # One read transaction: a read of several statements (a page's size, then its cursor)
        # sees one snapshot, as a Convex query does.
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("ROLLBACK")  # nothing was written: only the snapshot ends
            self._readers.put(db)

    def _creation_time(self) -> float:
        # Strictly increasing milliseconds, like Convex's, so order is insertion order.
        now = time.time() * 1000
        self._last_ct = max(now, self._last_ct + 0.001)
        return round(self._last_ct, 3)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._writing.depth = getattr(self._writing, "depth", 0) + 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._writing.depth -= 1

    def insert_many(self, table: str, documents: Iterable[dict[str, Any]]) -> int:
        """Insert documents (in an open transaction); each gets an _id and a _creationTime."""
        rows = []
        for doc in documents:
            body = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
            legacy = body.get("legacyId")
            rows.append(
                (
                    table,
                    doc.get("_id") or new_id(),
                    doc.get("_creationTime") or self._creation_time(),
                    legacy if isinstance(legacy, str) else None,
                    json.dumps(body, separators=(",", ":")),
                )
            )
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO tables (tbl) VALUES (?)", (table,))
            self._db.executemany(
                f"INSERT INTO documents (tbl, id, ct, legacy_id, body) VALUES (?, ?, ?, ?, {self._stored})", rows
            )
        return len(rows)

    def clear(self, table: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM documents WHERE tbl = ?", (table,))

    def time_span(self, table: str) -> tuple[float, float] | None:
        """The first and last creation time of a table's documents; None for an empty table."""
        with self.reading() as db:
            # Each an index seek: min() and max() in one statement would scan.
            ends = [
                db.execute(f"SELECT ct FROM documents WHERE tbl = ? ORDER BY ct {order} LIMIT 1", (table,)).fetchone()
                for order in ("ASC", "DESC")
            ]
        return None if ends[0] is None or ends[1] is None else (float(ends[0][0]), float(ends[1][0]))

    def count(self, table: str) -> int:
        with self.reading() as db:
            row = db.execute("SELECT count(*) FROM documents WHERE tbl = ?", (table,)).fetchone()
        return int(row[0])

    def tables(self) -> list[str]:
        """The tables created, by an import or an insert, whether or not they hold documents."""
        with self.reading() as db:
            return [r[0] for r in db.execute("SELECT tbl FROM tables ORDER BY tbl")]

    def has_table(self, table: str) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM tables WHERE tbl = ?", (table,)).fetchone() is not None

    @staticmethod
    def _document(row: tuple[Any, ...]) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(row[3])
        doc["_id"] = row[0]
        doc["_creationTime"] = row[1]
        return doc

    def get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        with self.reading() as db:
            row = db.execute(f"SELECT id, ct, tbl, {self._body} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            return None
        return row[2], self._document((row[0], row[1], row[2], row[3]))

    def by_legacy_id(self, table: str, legacy_id: str) -> dict[str, Any] | None:
        with self.reading() as db:
            row = db.execute(
                f"SELECT id, ct, tbl, {self._body} FROM documents WHERE tbl = ? AND legacy_id = ? ORDER BY ct LIMIT 1",
                (table, legacy_id),
            ).fetchone()
        return self._document(row) if row else None

    def first_json_by_legacy_ids(self, table: str, legacy_ids: list[str]) -> dict[str, str]:
        """The earliest document of each legacy id as JSON text, in one query per 500 ids.

        The text comes from SQLite with `_id` and `_creationTime` spliced in front, never parsed
        here: a function that returns documents whole (the sample's) then costs the stand-in no
        JSON work of its own, which would be most of its time."""
        return {
            legacy: _with_system_fields(body, doc_id, ct)
            for legacy, (doc_id, ct, body) in self._first_by_legacy_ids(
                table, legacy_ids, f"id, ct, {self._body}"
            ).items()
        }

    def first_ids_by_legacy_ids(self, table: str, legacy_ids: Iterable[str]) -> dict[str, str]:
        """The `_id` of the earliest document of each legacy id, read from the index alone: no
        document body is touched."""
        return {legacy: row[0] for legacy, row in self._first_by_legacy_ids(table, legacy_ids, "id").items()}

    def _first_by_legacy_ids(self, table: str, legacy_ids: Iterable[str], columns: str) -> dict[str, tuple[Any, ...]]:
        """`.first()` on by_legacy_id for each legacy id, as one query per 500 ids: legacy id ->
        the earliest document's `columns`."""
        wanted, found = list(legacy_ids), dict[str, tuple[Any, ...]]()
        with self.reading() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for legacy, *row in db.execute(
                    f"SELECT legacy_id, {columns} FROM documents WHERE tbl = ? AND"
                    f" legacy_id IN ({marks}) ORDER BY legacy_id, ct",
                    [table, *chunk],
                ):
                    found.setdefault(legacy, tuple(row))
        return found

    def set_strings(self, field: str, values: list[tuple[str, str]]) -> None:
        """Patch one top-level field to a string in each (document id, value), in SQL: the body is
        not parsed and written again in Python."""
        setter = "jsonb_set" if self.jsonb else "json_set"
        with self._lock:
            self._db.executemany(
                f"UPDATE documents SET body = {setter}(body, ?, ?) WHERE id = ?",
                [(json_path(field), value, doc_id) for doc_id, value in values],
            )

    def patch(self, doc_id: str, fields: dict[str, Any], remove: Iterable[str] = ()) -> None:
        """Set `fields` (a None is stored as null) and remove `remove` (ctx.db.patch to undefined)."""
        with self._lock:
            row = self._db.execute(f"SELECT {self._body} FROM documents WHERE id = ?", (doc_id,)).fetchone()
            if row is None:
                raise KeyError(doc_id)
            body = json.loads(row[0])
            body.update(fields)
            for key in remove:
                body.pop(key, None)
            legacy = body.get("legacyId")
            self._db.execute(
                f"UPDATE documents SET body = {self._stored}, legacy_id = ? WHERE id = ?",
                (json.dumps(body, separators=(",", ":")), legacy if isinstance(legacy, str) else None, doc_id),
            )

    def replace(self, doc_id: str, document: dict[str, Any]) -> None:
        """ctx.db.replace: the document's fields become these (its _id and _creationTime stay)."""
        body = {k: v for k, v in document.items() if k not in ("_id", "_creationTime")}
        legacy = body.get("legacyId")
        with self._lock:
            self._db.execute(
                f"UPDATE documents SET body = {self._stored}, legacy_id = ? WHERE id = ?",
                (json.dumps(body, separators=(",", ":")), legacy if isinstance(legacy, str) else None, doc_id),
            )

    def insert(self, table: str, document: dict[str, Any]) -> str:
        """Insert one document (in an open transaction); its new `_id`."""
        doc_id = new_id()
        self.insert_many(table, [{**document, "_id": doc_id}])
        return doc_id

    def delete(self, doc_id: str) -> None:
        with self._lock:
            if self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount == 0:
                raise KeyError(doc_id)

    def paginate(
        self,
        table: str,
        cursor: str | None,
        num_items: int,
        fields: list[str] | None = None,
        share: Share = (None, None),
    ) -> Page:
        """A page in creation order. With `fields`, each document holds only `_id` and those of
        them it has (read in SQL, as Convex reads only what a function touches): a whole-table
        scan then costs a fraction of parsing every document."""
        after = _decode_cursor(cursor)
        if fields is None:
            columns, parameters = self._body, []
        else:
            columns = ", ".join(["NULL", *(["body -> ?"] * len(fields))])
            parameters = [json_path(f) for f in fields]
        where, bound = _after(after, share)
        with self.reading() as db:
            rows = db.execute(
                f"SELECT id, ct, {columns} FROM documents WHERE tbl = ?{where} ORDER BY ct, id LIMIT ?",
                (*parameters, table, *bound, num_items + 1),
            ).fetchall()
        more = len(rows) > num_items
        rows = rows[:num_items]
        last = (rows[-1][1], rows[-1][0]) if rows else after
        if fields is None:
            documents = [self._document((r[0], r[1], table, r[2])) for r in rows]
        else:
            documents = [
                {"_id": r[0], **{f: json.loads(v) for f, v in zip(fields, r[3:], strict=True) if v is not None}}
                for r in rows
            ]
        return Page(documents, not more, _encode_cursor(last))

    def page_fields(
        self, table: str, cursor: str | None, num_items: int, fields: list[tuple[str, str]], share: Share = (None, None)
    ) -> tuple[str, list[Any], PageMeta]:
        """A page as SQL, for a function to compute over in SQLite: a `page` CTE with a column per
        (field, form), f0, f1, ..., in one of three forms: "json", the field's value as JSON text;
        "value", its SQL value (a string as text, true as 1); "number", its value if it is a
        number. Each is NULL when the field is missing or null. With it, what the function returns
        about the page: its size, whether more follow and its cursor, found by walking the index
        (no row reaches Python). Only the named fields are read: no document is copied whole."""
        where, bound = _after(_decode_cursor(cursor), share)
        rows = f"FROM documents WHERE tbl = ?{where} ORDER BY ct, id LIMIT ?"
        if self.jsonb:
            # JSONB is walked, not parsed: each column reads its field on its own.
            columns = [_field_sql("body", _literal(json_path(f)), form) for f, form in fields]
            cte = f"WITH page AS (SELECT {', '.join(_named(columns))} {rows})"
        else:
            # Text is parsed whole on every json_extract: one call takes every field at once (as an
            # array; two paths at least, or SQLite returns the bare value).
            paths = [json_path(f) for f, _form in fields]
            paths += [_NO_FIELD] * max(0, 2 - len(paths))
            columns = [_field_sql("j", f"'$[{i}]'", form) for i, (_f, form) in enumerate(fields)]
            cte = (
                f"WITH raw AS (SELECT json_extract(body, {', '.join(map(_literal, paths))}) AS j {rows}),"
                f" page AS (SELECT {', '.join(_named(columns))} FROM raw)"
            )
        return cte, [table, *bound, num_items], self.page_meta(table, cursor, num_items, share)

    def page_meta(self, table: str, cursor: str | None, num_items: int, share: Share = (None, None)) -> PageMeta:
        after = _decode_cursor(cursor)
        where, bound = _after(after, share)
        rows = f"FROM documents WHERE tbl = ?{where} ORDER BY ct, id"
        with self.reading() as db:
            (found,) = db.execute(
                f"SELECT count(*) FROM (SELECT 1 {rows} LIMIT ?)", (table, *bound, num_items + 1)
            ).fetchone()
            count = min(found, num_items)
            last = after
            if count:
                ct, doc_id = db.execute(f"SELECT ct, id {rows} LIMIT 1 OFFSET ?", (table, *bound, count - 1)).fetchone()
                last = (ct, doc_id)
        return PageMeta(count, found <= num_items, _encode_cursor(last))

    def query(self, sql: str, parameters: list[Any]) -> list[tuple[Any, ...]]:
        with self.reading() as db:
            return db.execute(sql, parameters).fetchall()

    def existing(self, ids: list[str]) -> set[str]:
        """Which of these ids are documents."""
        found: set[str] = set()
        with self.reading() as db:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in db.execute(f"SELECT id FROM documents WHERE id IN ({marks})", chunk))
        return found

    def documents(self, table: str) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.paginate(table, cursor, 1000)
            yield from page.documents
            if page.is_done:
                return
            cursor = page.continue_cursor

    def close(self) -> None:
        with self._lock, self._readers_lock:
            self._closed = True
            for reader in self._all_readers:
                reader.close()
            self._db.close()


def _after(cursor: tuple[float, str] | None, share: Share) -> tuple[str, list[Any]]:
    """The SQL condition (after `tbl = ?`) and its parameters for the rows past the cursor and
    inside the share: `ct >= from` and `ct < before`, each bound optional."""
    conditions, bound = [], []
    if cursor is not None:
        # A row value, so that SQLite seeks in the index instead of scanning.
        conditions.append("(ct, id) > (?, ?)")
        bound += [cursor[0], cursor[1]]
    for operator, value in zip((">=", "<"), share, strict=True):
        if value is not None:
            conditions.append(f"ct {operator} ?")
            bound.append(float(value))
    return "".join(f" AND {c}" for c in conditions), bound


def _field_sql(json: str, path: str, form: str) -> str:
    """SQL for a field of the JSON (or JSONB) in column `json` at `path` (an SQL literal)."""
    if form == "json":
        return f"NULLIF({json} -> {path}, 'null')"
    if form == "value":
        return f"{json} ->> {path}"
    if form == "number":
        return f"CASE WHEN json_type({json}, {path}) IN ('integer', 'real') THEN {json} ->> {path} END"
    raise ValueError(f"unknown form {form!r}")


def _literal(text: str) -> str:
    """Text as an SQL string literal: a field name is the caller's, so it is quoted, not pasted."""
    return "'" + text.replace("'", "''") + "'"


def _named(columns: list[str]) -> list[str]:
    return [f"{c} AS f{i}" for i, c in enumerate(columns)] or ["1 AS one"]


def _with_system_fields(body: str, doc_id: str, creation_time: float) -> str:
    """A stored body (JSON text of an object, never empty here: it has a legacyId) with `_id`
    and `_creationTime` first, as `_document` gives them: the float as Python writes it."""
    return f'{{"_id":{json.dumps(doc_id)},"_creationTime":{float(creation_time)!r},' + body[1:]


# A path no document has: Convex reserves field names that start with "_".
_NO_FIELD = '$."_cockpit_no_field"'


def json_path(field: str) -> str:
    """The SQLite JSON path of a top-level field (SQLite before 3.45 cannot name a field with a
    double quote in it: its paths take no escapes)."""
    return '$."' + field.replace('"', '\\"') + '"'


def _encode_cursor(position: tuple[float, str] | None) -> str:
    raw = json.dumps(list(position) if position else None)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    return (float(value[0]), str(value[1])) if value else None
