"""A row's JSON: msgspec's quick path and the exact path give the same document or the same
reason for every line, and what JSON cannot carry is rejected, never written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_mapping import CASES

from steps.rows.documents import converted, converted_exactly
from steps.rows.mapping import load_mapping
from steps.rows.values import RejectRow, decode_json

AWKWARD_TEXT = [
    "",
    "plain",
    'quote " and \\ backslash',
    "new\nline\ttab\r",
    "\x00nul\x1f",
    "/</script>",
    "ünïcödé",
    "😀 astral",
    "\u2028\u2029",
    "\ufeffbom",
    "\x7f",
]
AWKWARD_NUMBERS = [
    0,
    -0.0,
    1,
    -1,
    2**53 - 1,
    -(2**53 - 1),
    2**53,
    2**63,
    2**64 + 1,
    -(2**70),
    10**30,
    0.1,
    1e16,
    1.5e-300,
    5e-324,
    1.7976931348623157e308,
    123456.789,
    90071992547409.91,
]


# test_mapping's table: its `notes` is renamed, `secret` dropped, `contact` an email; `extra` has no rule.
def _transform(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "mapping.toml").write_text(CASES)
    return load_mapping(tmp_path / "mapping.toml").compile("public.cases")


def _outcome(function, transform, line: bytes) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    try:
        document, data = function(transform, line)
    except RejectRow as exc:
        return "rejected", str(exc)
    assert json.loads(data) == document, "the JSON written is the document"
    return "document", document


def _random_value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(AWKWARD_TEXT) + rng.choice(AWKWARD_TEXT)
    if pick < 0.6:
        return rng.choice(AWKWARD_NUMBERS)
    if pick < 0.7:
        return rng.choice([True, False, None])
    if depth < 3 and pick < 0.85:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if depth < 3:
        return {rng.choice(["a", "b", "_c", "$d", "é"]): _random_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    return None


def _random_line(rng: random.Random) -> bytes:
    row = {
        "id": rng.choice(["u-1", 7, 2**64 + 1, None]),
        "user_id": rng.choice(["u-9", None, 10**30]),
        "employer": rng.choice(["Acme", None, 3, ""]),
        "created_at": rng.choice(
            [
                None,
                "2024-06-01T00:07:03.123456+00:00",
                "1969-12-31T23:59:59.9995+00:00",
                "2024-06-01 00:07:03",
                "not a time",
                5,
            ]
        ),
        "filed_on": rng.choice([None, "2024-06-01", "2024-6-1", 20240601]),
        "wage": rng.choice([None, *AWKWARD_NUMBERS, "12.5"]),
        "methods": rng.choice(
            [None, [], [{"date": "2024-05-11", "method": "x"}], {"not": "an array"}, '[{"as": "text"}]']
        ),
        "meta": rng.choice([None, {}, {"a": 1}, '{"a": 2}', '{"_reserved": 1}']),
        "is_favorite": rng.choice([None, True, False]),
        "tags": rng.choice([None, [], ["a", "b"]]),
        "notes": _random_value(rng),
        "extra": _random_value(rng),
    }
    return json.dumps(row, ensure_ascii=rng.random() < 0.5).encode()


def test_the_quick_path_and_the_exact_path_agree_on_random_awkward_rows(tmp_path: Path) -> None:
    transform = _transform(tmp_path)
    rng = random.Random(20261122)
    quick = 0
    outcomes: set[str] = set()
    for _ in range(4000):
        line = _random_line(rng)
        try:
            decode_json(line)
            quick += 1
        except Exception:  # noqa: BLE001, S110 - counted: this line takes the exact path in both
            pass
        outcome = _outcome(converted, transform, line)
        assert outcome == _outcome(converted_exactly, transform, line), line
        outcomes.add(outcome[0])
    # Not a comparison of the exact path with itself: msgspec read these lines.
    assert quick == 4000
    assert outcomes == {"rejected", "document"}


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "a", "employer": "x", "wage": 1e400}',
        b'{"id": "a", "employer": "x", "wage": "Infinity"}',
        b'{"id": "a", "employer": "x", "notes": -1e999}',
        b'{"id": "a", "employer": "x", "notes": [1, 2, 1e400]}',
    ],
)
def test_a_number_beyond_float64_is_rejected_not_written_as_infinity(tmp_path: Path, line: bytes) -> None:
    transform = _transform(tmp_path)
    kind, reason = _outcome(converted, transform, line)
    assert kind == "rejected"
    assert "beyond float64" in str(reason) or "not a finite number" in str(reason)


def test_json_that_is_not_json_is_rejected_whichever_path_reads_it(tmp_path: Path) -> None:
    transform = _transform(tmp_path)
    cases = {
        b'{"id": "a", "employer": "x", "notes": NaN}': "not valid JSON",
        b'{"id": "a", "employer": "x", "notes": "\\ud800"}': "not valid JSON",
        b'{"id": "a", "employer": "x", "notes": "\xff"}': "invalid UTF-8",
        # JSON kept in a text column: Python's json would read NaN and nest until RecursionError.
        json.dumps({"id": "a", "employer": "x", "meta": '{"a": NaN}'}).encode(): "JSON text does not parse",
        json.dumps({"id": "a", "employer": "x", "meta": '{"a": 1e400}'}).encode(): "JSON text does not parse",
        json.dumps(
            {"id": "a", "employer": "x", "methods": "[" * 100_000 + "]" * 100_000}
        ).encode(): "JSON text does not parse",
    }
    for line, reason in cases.items():
        kind, said = _outcome(converted, transform, line)
        assert kind == "rejected" and reason in str(said), (line[:80], said)


def test_integer_keys_of_any_size_stay_exact_as_text(tmp_path: Path) -> None:
    # As a JSON number, Convex would keep a key past 2^53 as the nearest float64: two keys, one id.
    transform = _transform(tmp_path)
    big = 123456789012345678901234567890
    for key, user in ((big, -(2**70)), (2**53 + 1, 7), (42, "u-1")):
        line = json.dumps({"id": key, "user_id": user, "employer": "x"}).encode()
        document, data = converted(transform, line)
        assert document["legacyId"] == str(key) and document["legacyUserId"] == str(user)
        assert json.loads(data)["legacyId"] == str(key) and f'"{key}"'.encode() in data
    for bad in (1.5, True, [1], {"a": 1}):
        kind, said = _outcome(converted, transform, json.dumps({"id": bad, "employer": "x"}).encode())
        assert kind == "rejected" and "neither text nor an integer" in str(said), (bad, said)


def test_cents_that_only_the_text_holds_exactly_are_read_from_the_text(tmp_path: Path) -> None:
    transform = _transform(tmp_path)
    # 90071992547409.91 reads into a float whose shortest form is 90071992547409.9.
    document, _ = converted(transform, b'{"id": "a", "employer": "x", "wage": 90071992547409.91}')
    assert document["wage"] == 9007199254740991


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"_id": 1}, "reserved in Convex"),
        ([{"$type": "x"}], "reserved in Convex"),
        ({"a": 2**60}, "beyond 2^53 - 1"),
        ([[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]], "nested more than"),
    ],
)
def test_a_field_without_a_rule_keeps_arrays_and_objects_within_convexs_limits(
    tmp_path: Path, value: object, reason: str
) -> None:
    transform = _transform(tmp_path)
    for field in ("notes", "extra"):  # a column of the first row (generated code), and one it lacked
        kind, said = _outcome(converted, transform, json.dumps({"id": "a", "employer": "x", field: value}).encode())
        assert kind == "rejected" and reason in str(said) and field in str(said), (field, said)
