"""The rule table: a rule's `keeps` is only ever a shortcut for its `convert`."""

from __future__ import annotations

from typing import Any

import pytest

from steps.rows.rules import BY_SECTION, BY_TYPE, JSON, KEY, NUMBER, PLAIN, Rule, refusing
from steps.rows.values import MAX_SAFE_INTEGER, RejectRow, check_date

SAMPLES: list[Any] = [
    "",
    "NaN",
    "Infinity",
    "text",
    "2026-12-02",
    "infinity",
    "2026-13-40",
    "0001-01-01",
    True,
    False,
    0,
    -1,
    MAX_SAFE_INTEGER,
    MAX_SAFE_INTEGER + 1,
    -MAX_SAFE_INTEGER - 1,
    1.5,
    -0.0,
    [1, 2],
    {"a": 1},
    {"$bad": 1},
]

RULES: list[Rule] = [PLAIN, KEY, NUMBER, *BY_TYPE.values(), *BY_SECTION.values(), *JSON.values(), refusing("no")]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_value_a_rule_keeps_is_what_its_conversion_gives(rule: Rule) -> None:
    check_date("2026-12-02")  # seen before: the date rule's shortcut now keeps it
    kept = 0
    for value in SAMPLES:
        if rule.kept is None or not rule.kept(value):
            continue
        kept += 1
        try:
            converted = rule.convert(value)
        except RejectRow as exc:
            pytest.fail(f"{rule.name}: keeps {value!r}, which its conversion rejects: {exc}")
        assert converted == value and type(converted) is type(value), rule.name
    assert rule.kept is None or kept > 0, f"{rule.name}: no sample exercised its shortcut"


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_a_number_column_rejects_nan_and_the_infinities_that_row_to_json_writes_as_text(text: str) -> None:
    assert NUMBER.kept is not None and not NUMBER.kept(text)
    with pytest.raises(RejectRow, match=f"{text} is not a finite number"):
        NUMBER.convert(text)
    assert PLAIN.convert(text) == text  # in a text column, the same word is just text


def test_every_rule_with_a_shortcut_has_it_as_a_function_too() -> None:
    for rule in RULES:
        assert (rule.keeps is None) == (rule.kept is None), rule.name
