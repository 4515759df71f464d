from __future__ import annotations

import pytest

from cockpit.secrets import MASK, Redactor, UnsetVariable, references, resolve


def test_resolve_substitutes_and_registers_every_value() -> None:
    redact = Redactor()
    value = resolve({"dsn": "${DB}", "list": ["x-${TOKEN}-y"]}, {"DB": "postgresql://u:s3cretpw@h/db",
                                                               "TOKEN": "tok-123456"}, redact)
    assert value == {"dsn": "postgresql://u:s3cretpw@h/db", "list": ["x-tok-123456-y"]}
    line = "connecting to postgresql://u:s3cretpw@h/db with tok-123456; password s3cretpw"
    assert redact(line) == f"connecting to {MASK} with {MASK}; password {MASK}"


def test_unset_variable_names_itself() -> None:
    with pytest.raises(UnsetVariable) as exc:
        resolve("${NOPE}", {})
    assert str(exc.value) == "${NOPE} is not set in the environment"


def test_references_are_found_everywhere() -> None:
    assert sorted(references({"a": ["${X}", {"b": "${Y}z${X}"}], "c": 3})) == ["X", "X", "Y"]


def test_key_value_dsn_password_is_a_secret_too() -> None:
    redact = Redactor()
    redact.add("host=db.example.com password='p@ss word' user=app")
    assert "p@ss word" not in redact("auth failed for p@ss word")


def test_short_values_are_not_treated_as_secrets() -> None:
    redact = Redactor()
    redact.add("on")
    assert redact("turned on") == "turned on"


def test_deep_redaction() -> None:
    redact = Redactor()
    redact.add("hunter2!")
    assert redact.deep({"a": ["x hunter2!", 3], "b": "hunter2!"}) == {"a": [f"x {MASK}", 3], "b": MASK}
