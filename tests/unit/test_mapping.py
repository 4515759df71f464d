"""The mapping file and the row rules: names, timestamps, dates, exact cents, JSON, defaults, rejects."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from steps.rows.documents import document_of
from steps.rows.mapping import MappingError, load_mapping
from steps.rows.transformer import camel, reference_fields
from steps.rows.values import MAX_SAFE_INTEGER, RejectRow, to_cents

ROOT = Path(__file__).resolve().parents[2]

CASES = """
[defaults]
nulls = "omit"

[table."public.cases"]
target = "cases"
references = { user_id = "users" }
timestamps = ["created_at"]
dates = ["filed_on"]
cents = ["wage"]
json = { methods = "array", meta = "object" }
defaults = { is_favorite = false, tags = [] }
emails = ["contact"]
rename = { notes = "remarks" }
drop = ["secret"]
required = ["employer"]

[table."auth.users"]
target = "users"
"""


def _mapping(tmp_path: Path, text: str = CASES):  # type: ignore[no-untyped-def]
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    return load_mapping(path)


def _line(**row: object) -> bytes:
    base: dict[str, object] = {
        "id": "u-1",
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
        "secret": "pw",
    }
    base.update(row)
    return json.dumps(base).encode()


def _convert(tmp_path: Path, line: bytes) -> dict[str, object]:
    transform = _mapping(tmp_path).compile("public.cases")
    return dict(json.loads(document_of(transform, line)))


def test_names_follow_the_research_rules() -> None:
    assert camel("pwd_wage_amount") == "pwdWageAmount"
    assert camel("eta9089_filing_date") == "eta9089FilingDate"
    assert reference_fields("user_id") == ("legacyUserId", "userId")
    assert reference_fields("case_id") == ("legacyCaseId", "caseId")


def test_a_row_becomes_a_document(tmp_path: Path) -> None:
    doc = _convert(
        tmp_path,
        _line(
            created_at="2026-12-05T23:00:00.123-05:00",
            filed_on="2026-01-31",
            wage="123456.78",
            methods=["radio"],
            meta={"a": 1},
            contact="  Jo@Example.COM ",
            notes="n",
        ),
    )
    assert doc == {
        "legacyId": "u-1",
        "legacyUserId": "u-9",
        "employer": "Acme",
        "createdAt": 1796529600123,
        "filedOn": "2026-01-31",
        "wage": 12345678,
        "methods": ["radio"],
        "meta": {"a": 1},
        "isFavorite": False,
        "tags": [],
        "contact": "jo@example.com",
        "remarks": "n",
    }


def test_nulls_are_omitted_or_defaulted_and_dropped_fields_never_appear(tmp_path: Path) -> None:
    doc = _convert(tmp_path, _line())
    assert doc == {"legacyId": "u-1", "legacyUserId": "u-9", "employer": "Acme", "isFavorite": False, "tags": []}


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("0.10", 10),
        ("0.29", 29),
        ("1.005e2", 10050),
        ("19.99", 1999),
        ("-0.01", -1),
        ("0", 0),
        ("99999999.99", 9999999999),
        ("90071992547409.91", 9007199254740991),
        ("12345678901234.56", 1234567890123456),
        ("70368744177663.99", 7036874417766399),
    ],
)
def test_cents_are_exact(tmp_path: Path, text: str, cents: int) -> None:
    # The number written as text in the JSON line, as row_to_json writes a numeric.
    line = _line().replace(b'"wage": null', b'"wage": ' + text.encode())
    assert _convert(tmp_path, line)["wage"] == cents
    assert to_cents(Decimal(text)) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.005", "not a whole number of cents"),
        ("90071992547409.92", "beyond 2\\^53 - 1"),
        ("99999999999999999.99", "beyond 2\\^53 - 1"),
        ("1.234", "not a whole number of cents"),
    ],
)
def test_cents_that_cannot_be_exact_are_rejected(tmp_path: Path, text: str, reason: str) -> None:
    line = _line().replace(b'"wage": null', b'"wage": ' + text.encode())
    with pytest.raises(RejectRow, match=reason) as caught:
        _convert(tmp_path, line)
    assert str(caught.value).startswith("wage: ")


def test_cents_of_random_two_decimal_amounts_equal_decimal_arithmetic(tmp_path: Path) -> None:
    rng = random.Random(7)
    transform = _mapping(tmp_path).compile("public.cases")
    for _ in range(5000):
        digits = rng.randint(1, 16)
        units = rng.randint(0, 10**digits)
        text = f"{'-' if rng.random() < 0.2 else ''}{units}.{rng.randint(0, 99):02d}"
        line = _line().replace(b'"wage": null', b'"wage": ' + text.encode())
        exact = int(Decimal(text) * 100)
        if abs(exact) > MAX_SAFE_INTEGER:
            with pytest.raises(RejectRow):
                document_of(transform, line)
        else:
            assert json.loads(document_of(transform, line))["wage"] == exact, text


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("created_at", "infinity", "does not parse"),
        ("created_at", "294276-12-31T00:00:00+00:00", "does not parse"),
        ("filed_on", "infinity", "not YYYY-MM-DD"),
        ("methods", {"not": "an array"}, "expected a JSON array"),
        ("meta", [1], "expected a JSON object"),
        ("meta", {"_id": 1}, "reserved in Convex"),
        ("meta", {"n": 2**60}, "beyond 2\\^53 - 1"),
        ("employer", None, "NULL in required field"),
        ("notes", 2**60, "beyond 2\\^53 - 1"),
    ],
)
def test_bad_values_reject_the_row_naming_the_field(tmp_path: Path, field: str, value: object, reason: str) -> None:
    with pytest.raises(RejectRow, match=reason) as caught:
        _convert(tmp_path, _line(**{field: value}))
    assert field in str(caught.value)


def test_lines_that_are_not_json_objects_are_rejected(tmp_path: Path) -> None:
    transform = _mapping(tmp_path).compile("public.cases")
    with pytest.raises(RejectRow, match="invalid UTF-8 at byte 10"):
        document_of(transform, b'{"id": "ab\xffcd"}')
    with pytest.raises(RejectRow, match="not valid JSON"):
        document_of(transform, b'{"id": ')
    with pytest.raises(RejectRow, match="not a JSON object"):
        document_of(transform, b"[1, 2]")


def test_the_fast_path_and_the_general_path_agree(tmp_path: Path) -> None:
    """The generated converter serves rows of the first row's shape; any other shape takes the general path."""
    transform = _mapping(tmp_path).compile("public.cases")
    rng = random.Random(11)
    values = [None, "x", "2026-01-01", 3, 2.5, True, [], {}, "2026-12-05T23:00:00+00:00", "12.34", 12.34]
    for _ in range(3000):
        row = json.loads(_line())
        for field in ("created_at", "filed_on", "wage", "methods", "meta", "notes", "contact", "employer"):
            if rng.random() < 0.5:
                row[field] = rng.choice(values)
        fast = general = None
        try:
            fast = transform(dict(row))
        except RejectRow as exc:
            fast = ("reject", str(exc))
        try:
            general = transform.general(dict(row))
        except RejectRow as exc:
            general = ("reject", str(exc))
        assert fast == general, row


@pytest.mark.parametrize("nulls", ["omit", "keep"])
def test_after_a_full_first_row_the_fast_path_and_the_general_path_agree(tmp_path: Path, nulls: str) -> None:
    """The generated converter is made from the first row: here one with every field filled. Later
    rows with other types, bad dates or NULLs must convert exactly as the general path does."""
    transform = _mapping(tmp_path, CASES.replace('nulls = "omit"', f'nulls = "{nulls}"')).compile("public.cases")
    first = json.loads(
        _line(
            created_at="2026-12-05T23:00:00+00:00",
            filed_on="2026-01-02",
            wage=12.5,
            methods=[],
            meta={},
            is_favorite=True,
            tags=["a"],
            contact="A@B.C",
            notes="n",
            flag=True,
            ratio=0.5,
            label="x",
            opened_on="2025-03-04",
        )
    )
    transform(dict(first))
    rng = random.Random(7)
    values = [
        None,
        "x",
        "2026-01-01",
        "2026-13-01",
        "2026-1-1",
        3,
        2**60,
        2.5,
        True,
        [],
        {},
        ["2026-01-01"],
        {"k": 1},
        "2026-12-05T23:00:00+00:00",
    ]
    changed = ("id", "user_id", "notes", "flag", "ratio", "label", "filed_on", "opened_on", "employer", "wage")
    for _ in range(4000):
        row = dict(first)
        for field in rng.sample(changed, rng.randint(1, 3)):
            row[field] = rng.choice(values)
        try:
            fast: object = transform(dict(row))
        except RejectRow as exc:
            fast = ("reject", str(exc))
        try:
            general: object = transform.general(dict(row))
        except RejectRow as exc:
            general = ("reject", str(exc))
        assert fast == general, row


def test_mapping_problems_are_reported_with_their_line(tmp_path: Path) -> None:
    text = (
        '[table."public.cases"]\ntarget = "cases"\nreferences = { user_id = "people" }\n'
        'timestamps = ["a"]\ndates = ["a"]\nunknown_key = 1\n\n[table."public.other"]\ntarget = "cases"\n'
    )
    with pytest.raises(MappingError) as caught:
        _mapping(tmp_path, text)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert any(line == 6 and "unknown_key" in message for line, message in messages), messages
    text = text.replace("unknown_key = 1\n", "")
    with pytest.raises(MappingError) as caught:
        _mapping(tmp_path, text)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert any(line == 3 and "'people'" in m for line, m in messages), messages
    assert any(line == 5 and "in both timestamps and dates" in m for line, m in messages), messages
    assert any(line == 8 and "also the target" in m for line, m in messages), messages


def test_the_shipped_perm_mapping_loads() -> None:
    mapping = load_mapping(ROOT / "migration" / "perm-mapping.toml")
    assert mapping.target_of("public.cases") == "cases"
    assert {(r.table, r.id_field, r.target) for r in mapping.references()} >= {
        ("cases", "userId", "users"),
        ("notifications", "caseId", "cases"),
    }


def test_timestamps_become_milliseconds_rounded_down_before_and_after_1970() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from steps.rows.values import to_millis

    assert to_millis("1970-01-01T00:00:00.000999+00:00") == 0
    assert to_millis("1969-12-31T23:59:59.999500+00:00") == -1  # the floor, not towards zero
    assert to_millis("1969-12-31T23:59:59+00:00") == -1000
    assert to_millis("2026-12-06T04:00:00+00:00") == to_millis("2026-12-05T23:00:00-05:00") == 1796529600000
    assert to_millis("2026-12-06T04:00:00") == 1796529600000  # no offset: UTC
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(5)
    for _ in range(2000):
        moment = epoch + timedelta(microseconds=rng.randint(-70 * 365 * 86400 * 10**6, 130 * 365 * 86400 * 10**6))
        zone = timezone(timedelta(minutes=rng.choice([-480, -300, 0, 60, 330, 345])))
        text = moment.astimezone(zone).isoformat()
        assert to_millis(text) == (moment - epoch) // timedelta(milliseconds=1), text


def test_defaults_that_json_cannot_carry_are_reported_with_their_line(tmp_path: Path) -> None:
    text = (
        '[table."public.cases"]\ntarget = "cases"\n[table."public.cases".defaults]\nscore = nan\n'
        'since = 1979-05-27\nbig = 9007199254740993\nmeta = { _id = 1 }\nfine = [1, "a", { b = 2.5 }]\n'
    )
    with pytest.raises(MappingError) as caught:
        _mapping(tmp_path, text)
    messages = {p.line: p.message for p in caught.value.problems}
    assert "'score'" in messages[4] and "JSON can carry" in messages[4], messages
    assert "'since'" in messages[5] and "JSON can carry" in messages[5], messages
    assert "'big'" in messages[6] and "beyond 2^53 - 1" in messages[6], messages
    assert "'meta'" in messages[7] and "reserved" in messages[7], messages
    assert set(messages) == {4, 5, 6, 7}, messages


def test_a_mapping_checked_once_at_load_is_checked_again_once_it_changes(tmp_path: Path) -> None:
    from pydantic import TypeAdapter

    from steps.rows.mapping import MappingPath

    checked = TypeAdapter(MappingPath)
    path = tmp_path / "mapping.toml"
    path.write_text('[table."public.cases"]\ntarget = "cases"\n')
    for _ in range(3):  # the steps of a runbook that name the same mapping
        assert checked.validate_python("mapping.toml", context={"base_dir": tmp_path}) == "mapping.toml"
    path.write_text('[table."public.cases"]\ntarget = "not a name"\n')
    with pytest.raises(ValueError, match="mapping.toml:2: table 'public.cases': target 'not a name'"):
        checked.validate_python("mapping.toml", context={"base_dir": tmp_path})
