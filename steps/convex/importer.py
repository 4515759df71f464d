"""`convex.import`: each table's JSON Lines into Convex, as `npx convex import` does it.

`method = "http"` speaks the snapshot import protocol itself: the file goes up in 5 MiB parts
(read one at a time: constant memory), `finish_upload` names the import, the step confirms it
and follows the server's progress to `completed`. Every milestone is in the checkpoint before
the next request: the parts uploaded, then the import's id, then the table done. A resumed
step continues the upload, or follows the import it already started; it never starts a
second import of the same table. A `finish_upload` whose answer was lost is reconciled by
looking for the import it may have created, not by finishing twice.

`method = "cli"` runs `npx convex import` with the deploy key in its environment and its
output in the log.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from steps.basic import run_command
from steps.convex.client import Ambiguous, ConvexClient, ConvexError
from steps.manifest import read_manifest

PART_BYTES = 5 << 20  # the backend's minimum part size, but for the last part
MAX_PARTS = 9999
_BOM = b"\xef\xbb\xbf"


class ImportParams(StepParams):
    connection: Annotated[str, ConnectionRef("convex")]
    input: str = Field(description="the transform's output folder (with its manifest.json)")
    tables: list[str] = Field(default_factory=list, description="Convex tables to import; default all")
    mode: Literal["requireEmpty", "replace", "append"] = "requireEmpty"
    method: Literal["http", "cli"] = "http"
    command: list[str] = Field(default_factory=lambda: ["npx", "convex"], description="with method = cli")
    part_size: int = Field(default=PART_BYTES, ge=1 << 16)


def is_convex_cloud(url: str) -> bool:
    return ".convex.cloud" in url or ".convex.site" in url


class ImportStep(Step[ImportParams]):
    """Imports documents into Convex: a mutation of v2."""

    kind = "convex.import"
    effect = Effect.MUTATE
    Params = ImportParams
    resumes = True

    def describe(self, params: ImportParams) -> str:
        which = ", ".join(params.tables) if params.tables else "every table"
        return f"import {which} from {params.input} into {params.connection!r} ({params.mode}, by {params.method})"

    def run(self, ctx: StepContext[ImportParams]) -> None:
        params = ctx.params
        folder = ctx.base_dir / params.input
        manifest = read_manifest(folder)
        tables = params.tables or list(manifest["tables"])
        unknown = [t for t in tables if t not in manifest["tables"]]
        if unknown:
            raise StepFailed(f"{', '.join(unknown)} not in {params.input}/manifest.json")
        connection = ctx.connection(params.connection)
        states: dict[str, Any] = dict(ctx.checkpoint.get("tables", {}))
        for table in tables:
            entry = manifest["tables"][table]
            state = states.get(table, {})
            if state.get("phase") == "done":
                ctx.log(f"{table}: imported before ({state['rows']:,} documents), kept")
                continue

            def save(new: dict[str, Any], table: str = table) -> None:
                states[table] = new
                ctx.checkpoint["tables"] = dict(states)

            path = folder / entry["file"]
            if params.method == "cli":
                rows = self._by_cli(ctx, params, connection, table, path)
            else:
                with ConvexClient(connection.url, connection.deploy_key, cancel=ctx.cancel, log=ctx.log) as client:
                    rows = self._by_http(ctx, client, params, table, path, entry, state, save)
            expected = entry.get("output_rows")
            if expected is not None and rows is not None and rows != expected:
                raise StepFailed(f"{table}: Convex wrote {rows:,} documents, but the transform made {expected:,}")
            save({"phase": "done", "rows": rows if rows is not None else expected})
            ctx.metric(f"import.{table}.documents", rows if rows is not None else expected or 0)

    # -- the snapshot import protocol ------------------------------------------------------------

    def _by_http(
        self,
        ctx: StepContext[ImportParams],
        client: ConvexClient,
        params: ImportParams,
        table: str,
        path: Path,
        entry: dict[str, Any],
        state: dict[str, Any],
        save: Any,
    ) -> int:
        size = path.stat().st_size
        if state.get("phase") in (None, "uploading"):
            state = self._upload(ctx, client, params, table, path, size, state, save)
        if state["phase"] == "finishing":
            import_id = self._finish(ctx, client, params, table, state)
            state = {"phase": "importing", "import_id": import_id}
            save(state)
        return self._follow(ctx, client, table, state["import_id"], entry.get("output_rows"))

    def _upload(
        self,
        ctx: StepContext[ImportParams],
        client: ConvexClient,
        params: ImportParams,
        table: str,
        path: Path,
        size: int,
        state: dict[str, Any],
        save: Any,
    ) -> dict[str, Any]:
        part_size = max(params.part_size, -(-size // MAX_PARTS))
        token = state.get("token")
        parts: list[str] = list(state.get("parts", []))
        offset = int(state.get("offset", 0))
        if token is None:
            token, parts, offset = client.start_upload(), [], 0
            save({"phase": "uploading", "token": token, "parts": parts, "offset": offset})
        elif offset:
            ctx.log(f"{table}: continuing the upload at {offset:,} of {size:,} bytes")
        started = time.monotonic()
        with path.open("rb") as source:
            source.seek(offset)
            while offset < size:
                ctx.raise_if_cancelled()
                data = source.read(part_size)
                if offset == 0 and data.startswith(_BOM):
                    data = data[3:]  # Convex refuses a byte order mark in JSON Lines
                try:
                    part = client.upload_part(token, len(parts) + 1, data)
                except ConvexError as exc:
                    if exc.code != "InvalidUploadToken":
                        raise StepFailed(f"{table}: upload failed: {exc}") from None
                    ctx.log(f"{table}: the server forgot the upload (its token expired); starting it again")
                    return self._upload(ctx, client, params, table, path, size, {}, save)
                parts.append(part)
                offset = source.tell()
                save({"phase": "uploading", "token": token, "parts": parts, "offset": offset})
                ctx.progress(offset, size, "bytes", f"{table} upload")
        seconds = time.monotonic() - started
        ctx.log(f"{table}: uploaded {size:,} bytes in {len(parts)} parts in {seconds:.1f}s")
        state = {"phase": "finishing", "token": token, "parts": parts, "since": time.time()}
        save(state)
        return state

    def _finish(
        self,
        ctx: StepContext[ImportParams],
        client: ConvexClient,
        params: ImportParams,
        table: str,
        state: dict[str, Any],
    ) -> str:
        for _ in range(5):
            adopted = self._find_started(client, params, table, state["since"])
            if adopted is not None:
                ctx.log(f"{table}: the import {adopted} was already started; following it")
                return adopted
            try:
                import_id = client.finish_upload(table, params.mode, state["token"], state["parts"])
            except Ambiguous as exc:
                ctx.log(f"{table}: {exc}; looking for the import before trying again")
                ctx.sleep(1.0)
                continue
            ctx.log(f"{table}: import {import_id} started ({params.mode})")
            return import_id
        raise StepFailed(f"{table}: could not finish the upload: the server did not answer")

    @staticmethod
    def _find_started(client: ConvexClient, params: ImportParams, table: str, since: float) -> str | None:
        """An import of this table and mode created since we began finishing (a lost answer)."""
        live = ("uploaded", "waiting_for_confirmation", "in_progress", "completed")
        candidates = [
            i
            for i in client.list_imports()
            if (i.get("format") or {}).get("table") == table
            and i.get("mode") == params.mode
            # a second of slack for the two clocks
            and float(i.get("_creationTime", 0)) >= since * 1000 - 1000
            and (i.get("state") or {}).get("state") in live
        ]
        if len(candidates) > 1:
            raise StepFailed(
                f"{table}: {len(candidates)} imports were started since this step began finishing "
                f"({', '.join(c['_id'] for c in candidates)}); settle them in the dashboard, then "
                "retry or mark the step done"
            )
        return str(candidates[0]["_id"]) if candidates else None

    def _follow(
        self, ctx: StepContext[ImportParams], client: ConvexClient, table: str, import_id: str, expected: int | None
    ) -> int:
        shown = 0
        confirmed = False
        pause = 0.05  # a small import is done in a blink; a large one is asked once a second
        while True:
            ctx.raise_if_cancelled()
            state = client.import_state(import_id)
            phase = state.get("state")
            for message in (state.get("checkpoint_messages") or [])[shown:]:
                ctx.log(f"{table}: {message}")
                shown += 1
            if phase == "completed":
                rows = int(state.get("num_rows_written", 0))
                ctx.log(f"{table}: Convex wrote {rows:,} documents")
                ctx.progress(rows, expected or rows, "documents", f"{table} import")
                return rows
            if phase == "failed":
                raise StepFailed(f"{table}: the import failed: {state.get('error_message', 'no reason given')}")
            if phase == "waiting_for_confirmation" and not confirmed:
                for line in str(state.get("message_to_confirm") or "").splitlines():
                    ctx.log(f"{table}: {line}")
                try:
                    client.perform_import(import_id)
                except ConvexError as exc:
                    if exc.code != "ImportNotConfirmable":  # a retry after a lost answer: it did start
                        raise StepFailed(f"{table}: confirming the import failed: {exc}") from None
                confirmed = True
            elif phase == "in_progress":
                written = _count_in(str(state.get("progress_message") or ""))
                if written is not None:
                    ctx.progress(written, expected, "documents", f"{table} import")
            ctx.sleep(pause)
            pause = min(pause * 2, 1.0)

    # -- the Convex CLI --------------------------------------------------------------------------

    def _by_cli(
        self, ctx: StepContext[ImportParams], params: ImportParams, connection: Any, table: str, path: Path
    ) -> int | None:
        argv = [*params.command, "import", "--table", table, "--format", "jsonLines", "-y"]
        if params.mode == "replace":
            argv.append("--replace")
        elif params.mode == "append":
            argv.append("--append")
        argv.append(str(path))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEX_")}
        env["CI"] = "1"  # no prompts, no telemetry
        if is_convex_cloud(connection.url):
            env["CONVEX_DEPLOY_KEY"] = connection.deploy_key
        else:
            env["CONVEX_SELF_HOSTED_URL"] = connection.url
            env["CONVEX_SELF_HOSTED_ADMIN_KEY"] = connection.deploy_key
        ctx.log(f"{table}: {' '.join(argv[:-1])} {path.name}")
        written: list[int] = []
        said: list[str] = []

        def read_count(line: str) -> None:
            # The CLI's last word: `Added <n> documents to table "<table>".`
            match = re.search(r'Added (\d[\d,]*) documents? to table "([^"]+)"', line)
            if match and match.group(2) == table:
                written.append(int(match.group(1).replace(",", "")))
            if line.strip():
                said.append(line.strip())

        try:
            run_command(ctx, argv, env, ctx.base_dir, watch=read_count)
        except StepFailed as exc:
            raise StepFailed(f"{table}: convex import failed: {cli_error(said) or exc}") from None
        return written[-1] if written else None


def cli_error(lines: list[str]) -> str | None:
    """What the Convex CLI said last when it failed: its final line, which holds Convex's message.
    An error the CLI did not expect comes as `Unexpected Error: Error: {"code": .., "message": ..}`,
    the deployment's answer as it is: that is shown as `code: message`."""
    if not lines:
        return None
    last = lines[-1].removeprefix("Unexpected Error: ").removeprefix("Error: ")
    try:
        answer = json.loads(last)
    except ValueError:
        return last
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return f"{answer.get('code') or 'Error'}: {answer['message']}"
    return last


def _count_in(message: str) -> int | None:
    """The document count in a progress message such as 'Importing "cases" (52000 documents)'."""
    match = re.search(r"\((\d[\d,]*) documents?\)", message)
    return int(match.group(1).replace(",", "")) if match else None
