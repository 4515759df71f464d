"""The mapping file: how each v1 (PostgreSQL) row becomes a v2 (Convex) document.

A TOML file, checked like the runbook (every problem at file:line). Per source table:

    [table."public.cases"]
    target = "cases"                       # the Convex table
    references = { user_id = "users" }     # user_id -> legacyUserId, resolved later to userId
    timestamps = ["created_at"]            # ISO timestamps -> Unix milliseconds
    dates = ["pwd_filing_date"]            # kept as "YYYY-MM-DD" strings (checked)
    cents = ["pwd_wage_amount"]            # decimals -> integer cents, exactly
    json = { additional_recruitment_methods = "array" }   # parsed, and typed
    defaults = { is_favorite = false, tags = [] }         # the value when v1 has NULL
    rename = { beneficiary_identifier = "beneficiaryId" } # else snake_case -> camelCase
    drop = ["encrypted_password"]
    required = ["user_id", "employer_name"]                # NULL here rejects the row

The primary key (`id`, or `primary_key`) becomes `legacyId`, as text (an integer key in
decimal, so that a bigint stays exact; a reference's `legacy<Target>Id` the same). NULL fields
are left out (Convex's optional fields) unless a default is given. A row that cannot be
converted is rejected with a reason, never altered silently: `RejectRow`. The conversions are
in steps/rows/rules.py (the rule table) and steps/rows/values.py, the compiled transformer in
steps/rows/transformer.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from cockpit.step_api import Problem, ProblemsError, load_checked
from steps.rows.rules import BY_SECTION
from steps.rows.transformer import RowTransformer, reference_fields
from steps.rows.values import RejectRow, check_value, decode_json, encode_json

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    fields: Literal["camelCase", "keep"] = "camelCase"
    primary_key: str = "id"
    nulls: Literal["omit", "keep"] = "omit"


class TableMapping(_Model):
    target: str
    primary_key: str | None = None
    references: dict[str, str] = Field(default_factory=dict)
    timestamps: list[str] = Field(default_factory=list)
    dates: list[str] = Field(default_factory=list)
    cents: list[str] = Field(default_factory=list)
    json_: dict[str, Literal["array", "object", "any"]] = Field(default_factory=dict, alias="json")
    defaults: dict[str, Any] = Field(default_factory=dict)
    emails: list[str] = Field(default_factory=list, description="lower-cased and trimmed, as v2 matches them")
    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)


class MappingFile(_Model):
    defaults: Defaults = Field(default_factory=Defaults)
    table: dict[str, TableMapping] = Field(min_length=1)


@dataclass(frozen=True)
class Reference:
    source_table: str
    table: str  # the Convex table holding the reference
    column: str
    legacy_field: str
    id_field: str
    target: str


@dataclass(frozen=True)
class Mapping:
    path: Path
    defaults: Defaults
    tables: dict[str, TableMapping]

    def references(self) -> list[Reference]:
        out = []
        for source, table in self.tables.items():
            for column, target in table.references.items():
                legacy, id_field = reference_fields(column)
                out.append(Reference(source, table.target, column, legacy, id_field, target))
        return out

    def target_of(self, source_table: str) -> str:
        return self.tables[source_table].target

    def compile(self, source_table: str, column_types: dict[str, str] | None = None) -> RowTransformer:
        """The table's transform; `column_types` (the export's manifest) give number columns their rule."""
        return RowTransformer(self.tables[source_table], self.defaults, column_types)


class MappingError(ProblemsError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.args = ("; ".join(str(p) for p in problems),)


def _default_problem(value: Any) -> str | None:
    """Why a default from the TOML cannot go into a document, or None. TOML has dates, NaN and
    infinities, which JSON has not: they would be written as something else, or as null."""
    try:
        check_value(value, 1)
    except RejectRow as exc:
        return str(exc)
    if decode_json(encode_json(value)) != value:  # NaN is not equal to itself, a date not to its text
        return f"{value!r} is not a value JSON can carry (a date, NaN or an infinity)"
    return None


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; raise MappingError listing every problem with its line."""
    parsed, collect = load_checked(path, MappingFile, "mapping file", MappingError)
    targets: dict[str, str] = {}
    for source, table in parsed.table.items():
        where = ("table", source)
        if not _NAME.match(table.target):
            collect.error(
                where + ("target",), f"table {source!r}: target {table.target!r} is not a valid Convex table name"
            )
        if table.target in targets:
            collect.error(
                where + ("target",),
                f"table {source!r}: target {table.target!r} is also the target of {targets[table.target]!r}",
            )
        targets[table.target] = source
        listed: dict[str, str] = {}
        for kind in (*BY_SECTION, "drop"):
            for index, field in enumerate(getattr(table, kind)):
                if field in listed:
                    collect.error(
                        where + (kind, index), f"table {source!r}: {field!r} is in both {listed[field]} and {kind}"
                    )
                listed[field] = kind
        for field, value in table.rename.items():
            if not _NAME.match(value):
                collect.error(where + ("rename", field), f"table {source!r}: {value!r} is not a valid field name")
        for field, value in table.defaults.items():
            problem = _default_problem(value)
            if problem:
                collect.error(where + ("defaults", field), f"table {source!r}: the default of {field!r}: {problem}")
    known_targets = {t.target for t in parsed.table.values()}
    for source, table in parsed.table.items():
        for column, target in table.references.items():
            if target not in known_targets:
                collect.error(
                    ("table", source, "references", column),
                    f"table {source!r}: {column} refers to {target!r}, which no table of this mapping "
                    f"targets (one of: {', '.join(sorted(known_targets))})",
                )
    if collect.problems:
        raise MappingError(collect.problems)
    return Mapping(path, parsed.defaults, dict(parsed.table))


# Mapping files already checked, by (path, modification time, size): the steps of a runbook name
# the same mapping (the transform, each verification), and the cockpit starts faster reading it once.
_CHECKED: dict[tuple[str, str, int, int], str | None] = {}


def _mapping_is_sound(value: str, info: ValidationInfo) -> str:
    """Check the mapping file when the runbook is loaded: its problems are the runbook's."""
    base = (info.context or {}).get("base_dir")
    if base is not None:
        problem = _problem_of(Path(base) / value, value)
        if problem is not None:
            raise ValueError(problem)
    return value


def _problem_of(path: Path, named: str) -> str | None:
    try:
        status = path.stat()
        key: tuple[str, str, int, int] | None = (named, str(path.resolve()), status.st_mtime_ns, status.st_size)
    except OSError:
        key = None  # load_mapping says what is wrong with it
    if key is not None and key in _CHECKED:
        return _CHECKED[key]
    problem = None
    try:
        load_mapping(path)
    except MappingError as exc:
        # Named as the runbook names it: the operator finds it from there.
        problem = "; ".join(f"{named}{f':{p.line}' if p.line else ''}: {p.message}" for p in exc.problems)
    if key is not None:
        _CHECKED[key] = problem
    return problem


MappingPath = Annotated[str, AfterValidator(_mapping_is_sound)]
