"""Migration files in the second seed's format, and every problem with them at its line.

`NNN_snake_name.json`: `version` ("001"), `name`, `description`, `schema` (table -> field ->
Convex type, `?` for optional), `data` (operations `insert`, `update`, `delete`), `indexes`,
and optionally `sql` (`up`, `down`) for the PostgreSQL side. As the seed's practices ask, an
operation keeps what its rollback needs: an update the `original` value of every field it
sets, a delete the `original` document. The folder is read whole: versions in sequence from 001
without gaps or repeats, each operation on a table some migration up to it declares, each index
on fields its table has.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cockpit.runbook import Problem, ProblemCollector, did_you_mean
from migrate import jsonpos

FILE_NAME = re.compile(r"^(\d{3})_([a-z][a-z0-9_]*)\.json$")
# Convex's value types as the seed writes them; `id:<table>` is a reference to that table.
TYPES = ("string", "number", "float64", "int64", "boolean", "bytes", "null", "any", "array", "object")
_ID_TYPE = re.compile(r"^id:[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Insert(_Model):
    type: Literal["insert"]
    table: str
    data: dict[str, Any] = Field(description="the document; its rollback deletes it")


class Update(_Model):
    type: Literal["update"]
    table: str
    where: dict[str, Any] = Field(min_length=1, description="field = value that finds the documents")
    set: dict[str, Any] = Field(min_length=1)
    original: dict[str, Any] = Field(description="each set field's value before: what the rollback puts back")


class Delete(_Model):
    type: Literal["delete"]
    table: str
    where: dict[str, Any] = Field(min_length=1)
    original: dict[str, Any] = Field(description="the whole document: what the rollback inserts again")


Operation = Annotated[Insert | Update | Delete, Field(discriminator="type")]


class Index(_Model):
    table: str
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    fields: list[str] = Field(min_length=1)


class SqlPart(_Model):
    up: str = Field(min_length=1, description="applied to PostgreSQL, in the migration's transaction")
    down: str | None = Field(default=None, description="undoes `up`; without it the migration cannot roll back")


class Migration(_Model):
    version: str = Field(pattern=r"^\d{3}$")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    schema_: dict[str, dict[str, str]] = Field(default_factory=dict, alias="schema")
    data: list[Operation] = Field(default_factory=list)
    indexes: list[Index] = Field(default_factory=list)
    sql: SqlPart | None = None


class MigrationFile:
    def __init__(self, path: Path, migration: Migration, text: str) -> None:
        self.path = path
        self.migration = migration
        self.text = text  # as read: its checksum says whether it changed after it was applied

    @property
    def version(self) -> str:
        return self.migration.version

    @property
    def checksum(self) -> str:
        """sha256 of the file's bytes, shortened: what each side records when it applies it."""
        return "sha256:" + hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return self.path.stem  # "003_add_tags"


class MigrationsError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_folder(folder: Path) -> list[MigrationFile]:
    """Every migration file of `folder`, in version order; `MigrationsError` with every problem."""
    if not folder.is_dir():
        raise MigrationsError([Problem(folder, 0, "no such folder of migrations")])
    problems: list[Problem] = []
    loaded: list[tuple[MigrationFile, ProblemCollector]] = []
    for path in sorted(folder.glob("*.json")):
        match = FILE_NAME.match(path.name)
        if match is None:
            problems.append(Problem(path, 0, "a migration file is named NNN_snake_name.json, e.g. 004_add_tags.json"))
            continue
        read = _read(path, problems)
        if read is None:
            continue
        file, collect = read
        if file.migration.version != match.group(1):
            collect.error(
                ("version",), f"version {file.migration.version!r}, but the file name says {match.group(1)!r}"
            )
        if file.migration.name != match.group(2):
            collect.error(("name",), f"name {file.migration.name!r}, but the file name says {match.group(2)!r}")
        loaded.append((file, collect))
    _check_sequence(loaded)
    _check_against_schema(loaded)
    for _, collect in loaded:
        problems.extend(collect.problems)
    if problems:
        problems.sort(key=lambda p: (str(p.file), p.line))
        raise MigrationsError(problems)
    return [file for file, _ in loaded]


def _read(path: Path, problems: list[Problem]) -> tuple[MigrationFile, ProblemCollector] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, 0, f"cannot read it: {getattr(exc, 'strerror', None) or exc}"))
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})"))
        return None
    collect = ProblemCollector(path, jsonpos.scan(text))
    try:
        migration = Migration.model_validate(document)
    except ValidationError as exc:
        collect.validation(exc, (), "", Migration)
        problems.extend(collect.problems)
        return None
    for table, fields in migration.schema_.items():
        for field, kind in fields.items():
            base = kind.removesuffix("?")
            if base not in TYPES and not _ID_TYPE.match(base):
                collect.error(
                    ("schema", table, field),
                    f"{table}.{field}: unknown type {kind!r}{did_you_mean(base, TYPES)} "
                    f"(one of {', '.join(TYPES)}, or id:<table>; `?` for optional)",
                )
    for index, operation in enumerate(migration.data):
        if isinstance(operation, Update):
            lacking = sorted(set(operation.set) - set(operation.original))
            if lacking:
                collect.error(
                    ("data", index, "original"),
                    f"update of {operation.table}: original lacks {', '.join(lacking)}; "
                    "the rollback needs each set field's value before",
                )
    return MigrationFile(path, migration, text), collect


def _check_sequence(loaded: list[tuple[MigrationFile, ProblemCollector]]) -> None:
    seen: dict[str, Path] = {}
    expected = 1
    for file, collect in sorted(loaded, key=lambda item: item[0].migration.version):
        version = file.migration.version
        if version in seen:
            collect.error(("version",), f"version {version} is also {seen[version].name}")
            continue
        seen[version] = file.path
        if int(version) != expected:
            collect.error(("version",), f"version {version} out of sequence: {expected:03d} comes first")
        expected = int(version) + 1


def _check_against_schema(loaded: list[tuple[MigrationFile, ProblemCollector]]) -> None:
    """Operations and indexes against the tables the migrations up to theirs declare."""
    tables: dict[str, dict[str, str]] = {}
    for file, collect in sorted(loaded, key=lambda item: item[0].migration.version):
        migration = file.migration
        for table, fields in migration.schema_.items():
            tables.setdefault(table, {}).update(fields)
        for index, operation in enumerate(migration.data):
            if operation.table not in tables:
                collect.error(
                    ("data", index, "table"),
                    f"{operation.type} into {operation.table!r}, a table no migration up to "
                    f"{migration.version} declares{did_you_mean(operation.table, tables)}",
                )
            elif isinstance(operation, Insert):
                fields = tables[operation.table]
                unknown = sorted(set(operation.data) - set(fields))
                missing = sorted(f for f, kind in fields.items() if not kind.endswith("?") and f not in operation.data)
                if unknown:
                    collect.error(
                        ("data", index, "data"),
                        f"insert into {operation.table}: no field {', '.join(unknown)} in its schema",
                    )
                if missing:
                    collect.error(
                        ("data", index, "data"),
                        f"insert into {operation.table}: lacks {', '.join(missing)}, which are not optional",
                    )
        for index, declared in enumerate(migration.indexes):
            columns = tables.get(declared.table)
            if columns is None:
                collect.error(
                    ("indexes", index, "table"),
                    f"index {declared.name} on {declared.table!r}, a table no migration declares",
                )
                continue
            unknown = [f for f in declared.fields if f not in columns and f != "_creationTime"]
            if unknown:
                collect.error(
                    ("indexes", index, "fields"),
                    f"index {declared.name} on {declared.table}: no field {', '.join(unknown)} in its schema",
                )
