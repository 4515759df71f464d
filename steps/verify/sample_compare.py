"""The comparison behind `verify.sample`: a batch of sampled v1 rows, put through the transform,
against the documents v2 holds for them, field by field.

A `BatchComparer` does one batch: it runs in the step's own process, or in a worker process
(spawned, each with its own Convex client) when the step spreads its batches over several
CPUs; either way a batch gives back only its figures and its first few differences.
"""

from __future__ import annotations

import dataclasses
import os
from itertools import compress
from typing import Any

import msgspec
from pydantic_core import from_json

from cockpit.step_api import StepFailed, die_with_parent
from steps.convex.client import ConvexClient, ConvexError, ConvexFunctionError
from steps.rows.documents import document_of
from steps.rows.values import RejectRow, decode_json, encode_json

SYSTEM_FIELDS = frozenset({"_id", "_creationTime"})
SHOWN_MISMATCHES = 20


def differences(expected: dict[str, Any], found: dict[str, Any], ignored: frozenset[str]) -> list[str]:
    """The fields that differ, each as `field: v1 x, v2 y` (values shortened)."""
    if _alike(expected, found, ignored):
        return []
    out = []
    for field, value in expected.items():
        if field not in found:
            out.append(f"{field}: missing in v2")
        elif not _same(value, found[field]):
            out.append(f"{field}: v1 {_brief(value)}, v2 {_brief(found[field])}")
    for field in found.keys() - expected.keys() - ignored:
        out.append(f"{field}: only in v2 ({_brief(found[field])})")
    return out


def same_json(expected: bytes, found: dict[str, Any], ignored: frozenset[str]) -> bool:
    """True when v2's document, without the ignored fields, writes to exactly the JSON the
    transform wrote: then it is the same document, to the type (true is not 1, "5" not 5).

    The transform writes fields in the order of their names, as Convex holds them, and so does
    encode_json here, so v2's order does not matter. Most sampled documents end here, at a
    fraction of the cost of parsing both sides and comparing them field by field. False means only: look closer
    (`differences`): 5 and 5.0 write differently but are the same Convex number."""
    document = found.copy()  # a copy in C and a few pops: cheaper than a comprehension
    for field in ignored:
        document.pop(field, None)
    return encode_json(document) == expected


def _alike(expected: dict[str, Any], found: dict[str, Any], ignored: frozenset[str]) -> bool:
    """Most documents match: say so with C-level operations on the whole document, cheaper than
    field by field. False means: look field by field."""
    try:
        kinds = list(map(type, expected.values()))
        # Same types at the top: `==` then means `_same` for str, int, float and bool (True == 1
        # would otherwise pass, and 5 against 5.0 is left to the careful path).
        if kinds != list(map(type, map(found.__getitem__, expected))):
            return False
    except KeyError:  # a field missing in v2
        return False
    if not expected.items() <= found.items():
        return False
    if len(found) != len(expected) + sum(1 for k in ignored if k in found and k not in expected):
        return False  # a field only in v2
    if not _CONTAINERS.isdisjoint(kinds):
        # Inside lists and objects `==` does not tell True from 1; equal reprs do (and 5 against
        # 5.0 goes to `_same`).
        for key in compress(expected, map(_CONTAINERS.__contains__, kinds)):
            if repr(expected[key]) != repr(found[key]) and not _same(expected[key], found[key]):
                return False
    return True


_CONTAINERS = frozenset({list, dict})


def _same(a: Any, b: Any) -> bool:
    # Convex numbers are float64: 5 and 5.0 are the same value; True is not 1.
    kind = type(a)
    if kind is type(b) and (kind is str or kind is int or kind is float or kind is bool):
        return bool(a == b)  # most fields: no conversions to weigh
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclasses.dataclass
class BatchResult:
    """What a batch found: its figures, its first differences, and its client's log lines."""

    sampled: int = 0
    rejected: int = 0
    missing: int = 0
    wrong: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    log: list[str] = dataclasses.field(default_factory=list)
    process: int = dataclasses.field(default_factory=os.getpid)  # which process compared the batch


class BatchComparer:
    """Transforms a batch of sampled rows, fetches their documents by legacyId and compares them."""

    def __init__(
        self, client: ConvexClient, functions: str, target: str, transform: Any, pk: str, ignored: frozenset[str]
    ) -> None:
        self.client = client
        self.functions = functions
        self.target = target
        self.transform = transform
        self.pk = pk
        self.ignored = ignored

    def expect(self, lines: list[bytes], result: BatchResult) -> dict[str, bytes]:
        """Each sampled row's document by legacyId, as the very JSON the transform step wrote
        for the import; b"" for a row the transform rejects (it must not be in v2)."""
        expected: dict[str, bytes] = {}
        for line in lines:
            result.sampled += 1
            try:
                data = document_of(self.transform, line)
            except RejectRow:
                legacy = _key_of(line, self.pk)
                result.rejected += 1
                if legacy is not None:
                    expected[str(legacy)] = b""
                continue
            expected[str(_legacy_id_of(data).legacyId)] = data
        return expected

    def fetch(self, legacy_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not legacy_ids:
            return {}
        try:
            documents = self.client.query(
                f"{self.functions}:byLegacyIds", {"table": self.target, "legacyIds": legacy_ids}
            )
        except ConvexFunctionError as exc:
            raise StepFailed(f"{self.target}: {exc}") from None
        return {str(d.get("legacyId")): d for d in documents}

    def compare(self, expected: dict[str, bytes], found: dict[str, dict[str, Any]], result: BatchResult) -> None:
        for legacy_id, data in expected.items():
            problems: list[str]
            if not data:
                problems = ["rejected by the transform, but in v2"] if legacy_id in found else []
                result.wrong += bool(problems)
            elif legacy_id not in found:
                result.missing += 1
                problems = ["not in v2"]
            elif same_json(data, found[legacy_id], self.ignored):
                problems = []
            else:
                problems = differences(decode_json(data), found[legacy_id], self.ignored)
                result.wrong += bool(problems)
            if problems and len(result.problems) < SHOWN_MISMATCHES:
                result.problems.append(f"{self.target} {legacy_id}: {'; '.join(problems)}")

    def batch(self, lines: list[bytes]) -> BatchResult:
        result = BatchResult()
        expected = self.expect(lines, result)
        self.compare(expected, self.fetch(list(expected)), result)
        return result


class _LegacyId(msgspec.Struct):
    legacyId: Any  # noqa: N815 - the document's field


# Only legacyId is read: msgspec skips the other fields without building them.
_legacy_id_of = msgspec.json.Decoder(_LegacyId).decode


def _key_of(line: bytes, pk: str) -> Any:
    """The primary key of a row the transform rejected, if the line can be read at all."""
    try:
        row = from_json(line)
    except ValueError:
        return None
    return row.get(pk) if isinstance(row, dict) else None


# -- in a worker process -------------------------------------------------------------------------

_worker: BatchComparer | None = None
_worker_log: list[str] = []


def start_worker(
    parent: int,
    url: str,
    deploy_key: str,
    mapping_path: str,
    source: str,
    column_types: dict[str, str],
    functions: str,
    target: str,
    pk: str,
    ignored: frozenset[str],
) -> None:
    """A worker's initializer: it dies with the step's process; its own client (the key arrives
    through the spawn pipe, not on a command line another user could read) and its own compiled
    transform."""
    die_with_parent(parent)
    from pathlib import Path

    from steps.rows.mapping import load_mapping

    global _worker
    client = ConvexClient(url, deploy_key, log=_worker_log.append)
    transform = load_mapping(Path(mapping_path)).compile(source, column_types)
    _worker = BatchComparer(client, functions, target, transform, pk, ignored)


def compare_in_worker(lines: list[bytes]) -> BatchResult:
    assert _worker is not None, "start_worker was not run"
    try:
        result = _worker.batch(lines)
    except ConvexError as exc:  # its own message: the exception's extra fields do not cross processes
        raise StepFailed(f"{_worker.target}: {exc}") from None
    finally:
        log = list(_worker_log)
        _worker_log.clear()
    result.log = log
    return result
