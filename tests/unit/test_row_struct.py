"""The Struct path (steps/rows/structs.py): every line it converts has exactly the dict path's JSON,
and every line it refuses still gets the dict path's document or reason."""

from __future__ import annotations

import json
import random
from pathlib import Path

from test_mapping import CASES
from test_row_json import AWKWARD_NUMBERS, AWKWARD_TEXT, _random_line, _random_value

from steps.rows.documents import converted, converted_exactly, document_of
from steps.rows.mapping import load_mapping
from steps.rows.structs import StructPath
from steps.rows.transformer import RowTransformer
from steps.rows.values import RejectRow


def _transform(tmp_path: Path, text: str = CASES, table: str = "public.cases") -> RowTransformer:
    (tmp_path / "mapping.toml").write_text(text)
    return load_mapping(tmp_path / "mapping.toml").compile(table)


def _primed(transform: RowTransformer, line: bytes) -> RowTransformer:
    """The Struct path is built from the first row the dict path reads."""
    converted(transform, line)
    assert transform.struct_path is not None
    return transform


def _reference(transform: RowTransformer, line: bytes) -> tuple[str, object]:
    try:
        return "document", converted(transform, line)[1]
    except RejectRow as exc:
        return "rejected", str(exc)


def _refused(transform: RowTransformer, line: bytes) -> bool:
    assert transform.struct_path is not None
    return transform.struct_path(line) is None


def _through_document_of(transform: RowTransformer, line: bytes) -> tuple[str, object]:
    try:
        return "document", document_of(transform, line)
    except RejectRow as exc:
        return "rejected", str(exc)


def _plain(rng: random.Random) -> object:
    """Mostly what the Struct takes (scalars, arrays of them), now and then what it refuses."""
    pick = rng.random()
    if pick < 0.8:
        return _random_value(rng, depth=3)  # at that depth: a scalar
    if pick < 0.95:
        return [rng.choice([*AWKWARD_TEXT, *AWKWARD_NUMBERS, None, True]) for _ in range(rng.randrange(4))]
    return rng.choice([{"a": 1}, [[1]], [{"_b": 2}]])


def _likely_line(rng: random.Random) -> bytes:
    """Each field: a value the rules take, or (one time in twenty-five) one they reject."""

    def pick(good: list[object], bad: list[object]) -> object:
        return rng.choice(bad if rng.random() < 0.04 else good)

    row = {
        "id": pick(["u-1", 7, 2**64 + 1], [None]),
        "user_id": pick(["u-9", 10**30], [None]),
        "employer": pick(["Acme", 'ünïcödé "q"', 3], [None]),
        "created_at": pick(
            [
                None,
                "2024-06-01T00:07:03.123456+00:00",
                "1969-12-31T23:59:59.9995+00:00",
                "2024-06-01T00:07:03+05:30",
                "2024-06-01T00:07:03",
            ],
            ["not a time", 5],
        ),
        "filed_on": pick([None, "2024-06-01", "2023-02-28"], ["2024-6-1", 20240601]),
        "wage": pick([None, 87647.08, 0, 12, 0.1, 1e16, 90071992547409.91, "12.5"], [1.005, "x"]),
        "methods": pick(
            [None, [], [{"date": "2024-05-11", "method": "x"}], [{"a b": None}, 1, "s"]],
            [
                {},
                [{"": None}, 1, "s"],  # Convex refuses an empty field name
                '[{"as": "text"}]',
                [{"_x": 1}],
                [{"a": 1, "$y": 2}],
                [[1]],
                [{"a": {"b": 1}}],
                [{"a": 2**60}],
                [{"a": {"_b": 1}}],
            ],
        ),
        "meta": pick(
            [None, {}, {"a": 1}, {"a": [1, "x"], "e~": None}],
            [
                {"a": [1, "x"], "é": None},  # only non-control ASCII names
                {"tab\there": 1},
                '{"a": 2}',
                '{"_reserved": 1}',
                {"_r": 1},
                {"$r": 1},
                [],
                {"a": {"b": 1}},
                {"a": 2**60},
                {"a": [{"_b": 1}]},
                {"a": {"$b": 1}},
            ],
        ),
        "is_favorite": rng.choice([None, True, False]),
        "tags": rng.choice([None, [], ["a", "b"], [1, None]]),
        "contact": pick([None, " Ana@Example.COM "], [5]),
        "notes": _plain(rng),
        "secret": _plain(rng),
        "extra": _plain(rng),
    }
    return json.dumps(row, ensure_ascii=rng.random() < 0.5).encode()


def test_the_struct_path_writes_exactly_the_dict_paths_json_and_refuses_the_rest(tmp_path: Path) -> None:
    first = {
        "id": "u-0",
        "user_id": "u-9",
        "employer": "Acme",
        "created_at": None,
        "filed_on": None,
        "wage": None,
        "methods": None,
        "meta": None,
        "is_favorite": None,
        "tags": None,
        "contact": None,
        "notes": None,
        "secret": None,
        "extra": None,
    }  # the columns of _likely_line and _random_line, in their order
    transform = _primed(_transform(tmp_path), json.dumps(first).encode())
    quick = transform.struct_path
    assert quick is not None
    # Most of these lines are refused on purpose: the path must not stop weighing them.
    quick.WEIGHED_AFTER = 10**9
    rng = random.Random(20261123)
    taken = refused = 0
    for index in range(6000):
        # Two lines in three are likely ones; the rest are test_row_json's awkward rows.
        line = _likely_line(rng) if index % 3 else _random_line(rng)
        reference = _reference(transform, line)
        data = quick(line)
        if data is None:  # refused: document_of must still give the reference
            refused += 1
        else:
            taken += 1
            assert ("document", data) == reference, line
        assert _through_document_of(transform, line) == reference, line
    # Neither half is empty: the Struct path converted lines, and refused others.
    assert taken > 1000 and refused > 1000, (taken, refused)


def test_a_rule_that_gives_null_writes_null_as_the_dict_path_does(tmp_path: Path) -> None:
    transform = _transform(tmp_path, '[table."t"]\ntarget = "t"\njson = { data = "any" }\n', "t")
    _primed(transform, b'{"id": "a", "data": "[1]"}')
    line = b'{"id": "b", "data": "null"}'
    assert transform.struct_path is not None and transform.struct_path(line) == b'{"data":null,"legacyId":"b"}'
    assert document_of(transform, b'{"id": "c", "data": null}') == b'{"legacyId":"c"}'


def test_columns_in_another_order_give_the_same_document(tmp_path: Path) -> None:
    transform = _primed(_transform(tmp_path), b'{"id": "a", "employer": "x", "notes": "n", "tags": null}')
    line = b'{"tags": ["t"], "notes": "m", "employer": "y", "id": "b"}'
    assert transform.struct_path is not None
    assert (
        json.loads(transform.struct_path(line) or b"null")
        == json.loads(converted(transform, line)[1])
        == {"legacyId": "b", "employer": "y", "remarks": "m", "tags": ["t"]}
    )


def test_other_columns_than_the_first_rows_take_the_dict_path(tmp_path: Path) -> None:
    transform = _primed(_transform(tmp_path), b'{"id": "a", "employer": "x"}')
    assert transform.struct_path is not None
    for line in (b'{"id": "b", "employer": "y", "notes": "new"}', b'{"id": "b"}'):
        assert _refused(transform, line), line
        assert _through_document_of(transform, line) == _reference(transform, line)
    assert (
        document_of(transform, b'{"id": "b", "employer": "y", "notes": "new"}')
        == b'{"employer":"y","legacyId":"b","remarks":"new"}'
    )
    assert _through_document_of(transform, b'{"id": "b"}') == ("rejected", "required field 'employer' is missing")


def test_nulls_kept_and_required_fields_follow_the_mapping(tmp_path: Path) -> None:
    text = '[defaults]\nnulls = "keep"\n\n[table."t"]\ntarget = "t"\nrequired = ["name"]\ndefaults = { flag = true }\n'
    transform = _primed(_transform(tmp_path, text, "t"), b'{"id": "a", "name": "n", "flag": null, "note": null}')
    assert transform.struct_path is not None
    assert (
        transform.struct_path(b'{"id": "b", "name": "m", "flag": null, "note": null}')
        == b'{"flag":true,"legacyId":"b","name":"m","note":null}'
    )
    assert _through_document_of(transform, b'{"id": "b", "name": null, "flag": null, "note": null}') == (
        "rejected",
        "NULL in required field 'name'",
    )


def test_two_columns_written_under_one_name_leave_only_the_dict_path(tmp_path: Path) -> None:
    transform = _transform(tmp_path, '[table."t"]\ntarget = "t"\nrename = { a = "same", b = "same" }\n', "t")
    assert json.loads(document_of(transform, b'{"id": "x", "a": 1, "b": 2}')) == {"legacyId": "x", "same": 2}
    assert transform.struct_path is None
    assert json.loads(document_of(transform, b'{"id": "y", "a": 3, "b": 4}')) == {"legacyId": "y", "same": 4}


def test_what_a_plain_field_may_not_hold_is_refused_and_rejected_by_the_dict_path(tmp_path: Path) -> None:
    transform = _primed(_transform(tmp_path), b'{"id": "a", "employer": "x", "extra": null}')
    assert transform.struct_path is not None
    for value, reason in (
        (2**53, "beyond 2^53 - 1"),
        (-(2**53), "beyond 2^53 - 1"),
        ([1] * 8193, "over 8192"),
        ([2**60], "beyond 2^53 - 1"),
        ([[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]], "nested"),
        ({"_id": 1}, "reserved in Convex"),
    ):
        line = json.dumps({"id": "b", "employer": "y", "extra": value}).encode()
        assert _refused(transform, line), line[:60]
        kind, said = _through_document_of(transform, line)
        assert kind == "rejected" and reason in str(said), said
    # At the limits themselves, the Struct path converts.
    line = json.dumps({"id": "c", "employer": "z", "extra": [2**53 - 1] * 8192}).encode()
    assert transform.struct_path(line) == converted(transform, line)[1]


def test_a_document_over_convexs_mebibyte_is_rejected_on_the_struct_path_too(tmp_path: Path) -> None:
    transform = _primed(_transform(tmp_path), b'{"id": "a", "employer": "x", "notes": null}')
    line = json.dumps({"id": "b", "employer": "y", "notes": "n" * (1 << 20)}).encode()
    assert transform.struct_path is not None and len(transform.struct_path(line) or b"") > 1 << 20
    kind, said = _through_document_of(transform, line)
    assert kind == "rejected" and "over Convex's 1 MiB" in str(said)


def test_a_table_whose_lines_the_struct_path_mostly_refuses_stops_trying_it(tmp_path: Path) -> None:
    nested = _transform(tmp_path, '[table."t"]\ntarget = "t"\njson = { layout = "object" }\n', "t")
    _primed(nested, b'{"id": "a", "layout": {"grid": {"w": 2}}}')
    flat = _primed(
        _transform(tmp_path, '[table."t"]\ntarget = "t"\njson = { layout = "object" }\n', "t"),
        b'{"id": "a", "layout": {"w": 2}}',
    )
    for index in range(2 * StructPath.WEIGHED_AFTER):
        # jsonb nested deeper than the Struct reads: refused every time, yet converted.
        line = json.dumps({"id": index, "layout": {"grid": {"w": index}}}).encode()
        assert json.loads(document_of(nested, line)) == {"legacyId": str(index), "layout": {"grid": {"w": index}}}
    for index in range(3 * StructPath.WEIGHED_AFTER + 3):
        # One line in three refused, a thousand refusals and more: the path stays.
        line = json.dumps({"id": index, "layout": {"grid": {"w": 1}} if index % 3 == 0 else {"w": index}}).encode()
        assert document_of(flat, line) == converted(flat, line)[1]
    assert nested.struct_path is not None and nested.struct_path.stopped
    # Stopped for good: not even a line it would take is tried, and the dict path converts it.
    flat_line = b'{"id": "z", "layout": {"w": 1}}'
    assert nested.struct_path(flat_line) is None
    assert json.loads(document_of(nested, flat_line)) == {"legacyId": "z", "layout": {"w": 1}}
    assert flat.struct_path is not None and not flat.struct_path.stopped


def test_every_path_writes_the_fields_in_the_order_of_their_names_as_convex_holds_them(tmp_path: Path) -> None:
    transform = _primed(
        _transform(tmp_path, '[table."t"]\ntarget = "t"\njson = { layout = "array" }\n', "t"),
        b'{"id": "a", "zeta": 1, "alpha": 2, "layout": []}',
    )
    flat = b'{"id": "b", "zeta": 1, "alpha": 2, "layout": [{"w": 1, "h": 2}]}'
    written = b'{"alpha":2,"layout":[{"h":2,"w":1}],"legacyId":"b","zeta":1}'
    assert transform.struct_path is not None and transform.struct_path(flat) == written
    assert converted(transform, flat)[1] == written
    assert converted_exactly(transform, flat)[1] == written
    # Nested deeper than the Struct path reads: the dict and exact paths sort every level.
    nested = b'{"id": "b", "zeta": 1, "alpha": 2, "layout": [{"w": 1, "h": {"d": [{"y": 1, "x": 2}], "c": 3}}]}'
    deep = b'{"alpha":2,"layout":[{"h":{"c":3,"d":[{"x":2,"y":1}]},"w":1}],"legacyId":"b","zeta":1}'
    assert transform.struct_path(nested) is None
    assert converted(transform, nested)[1] == deep
    assert converted_exactly(transform, nested)[1] == deep


def test_integer_keys_are_written_as_text_by_the_struct_path_as_by_the_dict_path(tmp_path: Path) -> None:
    transform = _primed(_transform(tmp_path), b'{"id": "a", "user_id": "u", "employer": "x"}')
    for key, user in ((7, 2**60), ("b", 3), (-5, "u"), (2**70, 1)):
        line = json.dumps({"id": key, "user_id": user, "employer": "y"}).encode()
        written = transform.struct_path(line) if transform.struct_path else None
        assert key == 2**70 or written is not None, key  # msgspec reads 64-bit integers; the dict path the rest
        expected = converted(transform, line)[1]
        assert written in (None, expected)
        assert json.loads(document_of(transform, line)) == {
            "legacyId": str(key),
            "legacyUserId": str(user),
            "employer": "y",
        }
    for bad in (1.5, True, None):
        line = json.dumps({"id": "c", "user_id": bad, "employer": "y"}).encode()
        kind, said = _through_document_of(transform, line)
        if bad is None:  # NULL: the field is left out, as any other
            assert kind == "document" and "legacyUserId" not in json.loads(said)  # type: ignore[arg-type]
        else:
            assert kind == "rejected" and "user_id: key" in str(said) and "neither text nor an integer" in str(said)
