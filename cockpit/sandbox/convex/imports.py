"""The Convex stand-in's snapshot imports: what `npx convex import` speaks (start_upload,
upload_part, finish_upload, the `_system/cli/queryImport` state machine, perform_import), and
the one-shot `/api/import`. Each import is parsed and run on a thread of its own, in one
transaction, as Convex runs it."""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.sandbox.convex.store import DocumentStore, new_id
from cockpit.sandbox.convex.values import Int64, float64

MAX_DOCUMENT_BYTES = 1 << 20


SYSTEM_FIELDS = ("_id", "_creationTime")


def float64_of_text(text: str) -> int | float:
    return float64(int(text))


def field_name_problem(value: Any, top: bool = False) -> str | None:
    """Why Convex refuses a document's field names, at any depth, or None: a name must be
    non-empty, of non-control ASCII characters, and start with neither `$` nor `_` (the
    system fields at the top aside)."""
    if isinstance(value, list):
        return next((p for item in value if (p := field_name_problem(item))), None)
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if top and key in SYSTEM_FIELDS:
            continue
        if not key or key[0] in "$_" or not (key.isascii() and key.isprintable()):
            return (
                f"Invalid field name {key!r}: field names can only contain non-control ASCII "
                "characters and must not start with '$' or '_'"
            )
        problem = field_name_problem(item)
        if problem:
            return problem
    return None


class BadRequest(Exception):
    """A request the deployment refuses, with its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ImportJob:
    id: str
    table: str  # the table of a JSON Lines import; "" for a ZIP snapshot, which names its own
    mode: str
    format: str
    files: dict[str, Path]  # each table's documents, as JSON Lines
    created: float
    state: dict[str, Any]
    component: str | None = None


class SnapshotImports:
    def __init__(self, folder: Path, store: DocumentStore) -> None:
        self.folder = folder
        self.store = store
        self.jobs: dict[str, ImportJob] = {}
        self._uploads: dict[str, dict[str, Path]] = {}
        self._lock = threading.Lock()

    def start_upload(self) -> str:
        token = "upload-" + secrets.token_hex(12)
        with self._lock:
            self._uploads[token] = {}
        return token

    def cancel(self, import_id: str) -> None:
        self.get(import_id).state = {"state": "failed", "error_message": "Import canceled"}

    def all_values(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.value_of(job) for job in self.jobs.values()]

    def upload_part(self, query: dict[str, str], body: bytes) -> str:
        token = query.get("uploadToken", "")
        try:
            number = int(query.get("partNumber", ""))
        except ValueError:
            raise BadRequest("ImportFailed", "partNumber must be a number") from None
        with self._lock:
            parts = self._uploads.get(token)
        if parts is None:
            raise BadRequest("InvalidUploadToken", f"unknown upload token {token!r}")
        if not 1 <= number < 10000:
            raise BadRequest("ImportFailed", "partNumber must be between 1 and 9999")
        folder = self.folder / "uploads" / token
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"part-{number:05d}"
        part.write_bytes(body)
        part_token = f"{token}:{number}"
        with self._lock:
            parts[part_token] = part
        return part_token

    def finish_upload(self, request: dict[str, Any]) -> str:
        args = request.get("import", {})
        token = request.get("uploadToken", "")
        with self._lock:
            parts = self._uploads.get(token)
        if parts is None:
            raise BadRequest("InvalidUploadToken", f"unknown upload token {token!r}")
        table = args.get("tableName") or ""
        form = args.get("format")
        if form not in ("jsonLines", "zip"):
            raise BadRequest("ImportFormatUnsupported", f"the stand-in imports jsonLines and zip, not {form}")
        if form == "jsonLines" and not table:
            raise BadRequest("InvalidName", "JSONL import requires table name")
        if form == "zip" and table:
            raise BadRequest("InvalidName", "a ZIP snapshot import names its tables itself")
        mode = args.get("mode", "requireEmpty")
        if mode not in ("requireEmpty", "append", "replace", "replaceAll"):
            raise BadRequest("InvalidImportMode", f"unknown mode {mode}")
        path = self.folder / "uploads" / f"{token}.{'jsonl' if form == 'jsonLines' else 'zip'}"
        with path.open("wb") as out:
            for part_token in request.get("partTokens", []):
                part = parts.get(part_token)
                if part is None:
                    raise BadRequest("InvalidUploadToken", f"unknown part token {part_token!r}")
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        files = {table: path} if form == "jsonLines" else self._tables_of_snapshot(path)
        import_id = new_id()
        imp = ImportJob(
            import_id,
            table,
            mode,
            form,
            files,
            time.time() * 1000,
            {"state": "uploaded"},
            args.get("componentPath"),
        )
        with self._lock:
            self.jobs[import_id] = imp
        threading.Thread(target=self._parse, args=(imp,), daemon=True).start()
        return import_id

    def get(self, import_id: str) -> ImportJob:
        with self._lock:
            imp = self.jobs.get(import_id)
        if imp is None:
            raise BadRequest("InvalidImport", f"invalid import id {import_id}")
        return imp

    def _documents(self, path: Path) -> Iterator[dict[str, Any]]:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, 1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raise ValueError("Utf8BomNotSupported: the file starts with a UTF-8 byte order mark")
                if not raw.strip():
                    continue
                if len(raw) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"line {number}: document is larger than 1 MiB")
                try:
                    # Every JSON number imports as a float64: 2^53 + 1 arrives as 2^53.
                    doc = json.loads(raw, parse_int=float64_of_text)
                except ValueError as exc:
                    raise ValueError(f"line {number}: not valid JSON: {exc}") from None
                if not isinstance(doc, dict):
                    raise ValueError(f"line {number}: a document must be a JSON object")
                problem = field_name_problem(doc, top=True)
                if problem:
                    raise ValueError(f"line {number}: {problem}")
                yield doc

    def _tables_of_snapshot(self, path: Path) -> dict[str, Path]:
        """A snapshot ZIP (what `npx convex export` writes): `<table>/documents.jsonl` for each
        table; the folders whose names start with `_` (system tables, storage) are not imported."""
        folder = path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    table, _, rest = name.partition("/")
                    if rest != "documents.jsonl" or not table or table.startswith("_"):
                        continue
                    target = folder / f"{table}.jsonl"
                    with archive.open(name) as src, target.open("wb") as out:
                        shutil.copyfileobj(src, out)
                    files[table] = target
        except zipfile.BadZipFile:
            raise BadRequest("ImportFailed", "the uploaded file is not a ZIP archive") from None
        if not files:
            raise BadRequest("ImportFailed", "the ZIP archive holds no <table>/documents.jsonl")
        return files

    def _parse(self, imp: ImportJob) -> None:
        lines = []
        deletes = 0
        for table, path in imp.files.items():
            try:
                rows = sum(1 for _ in self._documents(path))
            except ValueError as exc:
                imp.state = {"state": "failed", "error_message": f"Hit an error while importing: {exc}"}
                return
            existing = self.store.count(table)
            if imp.mode == "requireEmpty" and existing:
                imp.state = {
                    "state": "failed",
                    "error_message": f"Import requires the table {table!r} to be empty, but it has {existing} "
                    "documents. Use --replace or --append",
                }
                return
            delete = existing if imp.mode in ("replace", "replaceAll") else 0
            deletes += delete
            lines.append(f"{table} | {rows} | {delete} of {existing} |")
        imp.state = {
            "state": "waiting_for_confirmation",
            # Convex asks for a confirmation only when the import would delete documents.
            "require_manual_confirmation": deletes > 0,
            "message_to_confirm": "Import change summary:\ntable | create | delete |\n" + "\n".join(lines),
        }

    def perform(self, import_id: str) -> None:
        imp = self.get(import_id)
        if imp.state.get("state") != "waiting_for_confirmation":
            raise BadRequest("ImportNotConfirmable", f"import {import_id} is {imp.state.get('state')}")
        imp.state = {"state": "in_progress", "progress_message": "Importing", "checkpoint_messages": []}
        threading.Thread(target=self._run_import, args=(imp,), daemon=True).start()

    def _run_import(self, imp: ImportJob) -> None:
        written = 0
        messages = []
        try:
            # One transaction: like Convex, nobody sees a half-imported table.
            with self.store.transaction():
                for table, path in imp.files.items():
                    if imp.mode in ("replace", "replaceAll"):
                        self.store.clear(table)
                    before = written
                    batch: list[dict[str, Any]] = []
                    for doc in self._documents(path):
                        batch.append(doc)
                        if len(batch) == 1000:
                            written += self.store.insert_many(table, batch)
                            batch = []
                            imp.state = {**imp.state, "progress_message": f'Importing "{table}" ({written} documents)'}
                    written += self.store.insert_many(table, batch)
                    messages.append(f'Imported "{table}" ({written - before} documents)')
        except Exception as exc:  # the import fails as a whole
            imp.state = {"state": "failed", "error_message": f"Hit an error while importing: {exc}"}
            return
        imp.state = {"state": "completed", "num_rows_written": Int64(written), "checkpoint_messages": messages}

    def import_at_once(self, query: dict[str, str], body: bytes) -> int:
        """The one-shot `POST /api/import?tableName=&format=&mode=`: upload and import in one request."""
        table = query.get("tableName")
        if not table or query.get("format") != "jsonLines":
            raise BadRequest("InvalidName", "a jsonLines import needs a tableName")
        path = self.folder / f"once-{secrets.token_hex(6)}.jsonl"
        path.write_bytes(body)
        imp = ImportJob(
            new_id(),
            table,
            query.get("mode", "requireEmpty"),
            "jsonLines",
            {table: path},
            time.time() * 1000,
            {"state": "uploaded"},
        )
        self._parse(imp)
        if imp.state["state"] == "failed":
            raise BadRequest("ImportFailed", imp.state["error_message"])
        imp.state = {"state": "in_progress"}
        self._run_import(imp)
        if imp.state["state"] != "completed":
            raise BadRequest("ImportFailed", imp.state.get("error_message", "failed"))
        return int(imp.state["num_rows_written"])

    def value_of(self, imp: ImportJob) -> dict[str, Any]:
        return {
            "_id": imp.id,
            "_creationTime": imp.created,
            "state": imp.state,
            "format": {"format": imp.format, "table": imp.table} if imp.table else {"format": imp.format},
            "mode": imp.mode,
            "componentPath": imp.component,
        }
