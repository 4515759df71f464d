"""verify.sample's comparison of a transformed row with its v2 document, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from steps.rows.values import decode_json, encode_json
from steps.verify.sample_compare import BatchComparer, BatchResult, differences, same_json

IGNORED = frozenset({"_id", "_creationTime", "userId"})
BASE: dict[str, Any] = {
    "legacyId": "c1",
    "name": "Zoë",
    "cents": 1250,
    "rate": 0.5,
    "ok": True,
    "tags": ["a", "b"],
    "meta": {"n": 1, "flags": [True, None]},
    "none": None,
}


def with_(**changes: Any) -> dict[str, Any]:
    doc = {**BASE, "_id": "x" * 32, "_creationTime": 1.5, "userId": "y" * 32}
    for key, value in changes.items():
        if value is KeyError:
            del doc[key]
        else:
            doc[key] = value
    return doc


CASES = [
    (with_(), []),
    (with_(cents=1250.0), []),  # Convex numbers are float64: 1250 and 1250.0 are one value
    (with_(meta={"n": 1.0, "flags": [True, None]}), []),
    (with_(ok=1), ["ok: v1 True, v2 1"]),  # True is not 1
    (with_(cents=True, ok=True), ["cents: v1 1250, v2 True"]),
    (with_(tags=["a", 1]), ["tags: v1 ['a', 'b'], v2 ['a', 1]"]),
    (
        with_(meta={"n": 1, "flags": [1, None]}),
        ["meta: v1 {'n': 1, 'flags': [True, None]}, v2 {'n': 1, 'flags': [1, None]}"],
    ),
    (
        with_(meta={"n": True, "flags": [True, None]}),
        ["meta: v1 {'n': 1, 'flags': [True, None]}, v2 {'n': True, 'flags': [True, None]}"],
    ),
    (with_(rate=0.25), ["rate: v1 0.5, v2 0.25"]),
    (with_(name="Zoe"), ["name: v1 'Zoë', v2 'Zoe'"]),
    (with_(none=KeyError), ["none: missing in v2"]),
    (with_(none=0), ["none: v1 None, v2 0"]),
    (with_(extra="z"), ["extra: only in v2 ('z')"]),
    (with_(userId=KeyError, _id=KeyError), []),  # ignored fields may be absent too
]


@pytest.mark.parametrize(("found", "expected_problems"), CASES)
def test_differences_name_each_field_that_differs(found: dict[str, Any], expected_problems: list[str]) -> None:
    assert differences(dict(BASE), found, IGNORED) == expected_problems


def _compared(found: dict[str, Any]) -> BatchResult:
    """A batch of one: BASE as the transform writes it, against `found` as v2's document."""
    comparer = BatchComparer(None, "cockpit", "cases", None, "id", IGNORED)  # type: ignore[arg-type]
    result = BatchResult()
    comparer.compare({"c1": encode_json(BASE)}, {"c1": found}, result)
    return result


@pytest.mark.parametrize(("found", "expected_problems"), CASES)
def test_the_batch_says_what_differences_says_with_v2_fields_in_any_order(
    found: dict[str, Any], expected_problems: list[str]
) -> None:
    for order in (found, dict(reversed(found.items()))):
        result = _compared(order)
        assert result.wrong == bool(expected_problems)
        # Word for word, but v1's side as the transform wrote it: its fields in name order.
        said = differences(decode_json(encode_json(BASE)), order, IGNORED)
        assert len(said) == len(expected_problems)
        assert result.problems == ([f"cases c1: {'; '.join(said)}"] if said else [])


def test_the_same_json_is_the_same_document_to_the_type() -> None:
    written = encode_json(BASE)
    assert same_json(written, with_(), IGNORED)
    # v2's fields in another order, an object's too: still the same JSON once written.
    shuffled = dict(reversed(with_(meta={"flags": [True, None], "n": 1}).items()))
    assert same_json(written, shuffled, IGNORED)
    assert not same_json(written, with_(ok=1), IGNORED)
    assert not same_json(written, with_(meta={"n": 1, "flags": [1, None]}), IGNORED)
    assert not same_json(written, with_(extra=None), IGNORED)
    assert not same_json(written, with_(none=KeyError), IGNORED)
    # The same Convex number, written otherwise: not the same JSON, so the batch looks closer.
    assert not same_json(written, with_(cents=1250.0), IGNORED)
    assert _compared(with_(cents=1250.0)).wrong == 0
