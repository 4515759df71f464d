from __future__ import annotations

import pytest

from cockpit.secrets import MASK, Redactor, UnsetVariable, references, resolve


def test_resolve_substitutes_and_registers_every_value() -> None:
    redact = Redactor()
    value = resolve(
        {"dsn": "${DB}", "list": ["x-${TOKEN}-y"]},
        {"DB": "postgresql://u:s3cretpw@h/db", "TOKEN": "tok-123456"},
        redact,
    )
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


def test_an_address_keeps_its_host_and_hides_its_credentials() -> None:
    redact = Redactor()
    env = {
        "DSN": "postgresql://app:s3cr%40t-pw@db.v1.example:5432/perm",
        "V2": "https://v2.example/app?key=k-9876543",
        "HOST_ONLY": "v1.example.com",
        "KV": "host=db port=5432 password=hunter22",
    }
    resolve({"dsn": "${DSN}"}, env, redact, address=True)
    resolve("${V2}", env, redact, address=True)
    resolve("${HOST_ONLY}", env, redact, address=True)
    resolve("${KV}", env, redact, address=True)
    line = (
        "GET https://v2.example/app?key=k-9876543 then postgresql://app:s3cr%40t-pw@db.v1.example:5432/perm "
        "(s3cr@t-pw) via v1.example.com, hunter22"
    )
    assert redact(line) == (
        f"GET https://v2.example/app?key={MASK} then postgresql://app:{MASK}@db.v1.example:5432/perm "
        f"({MASK}) via {MASK}, {MASK}"
    )


def test_a_value_that_is_not_an_address_stays_a_secret_whole() -> None:
    redact = Redactor()
    resolve("${TOKEN}", {"TOKEN": "https://hooks.example/services/T0/B0/XXXXSECRET"}, redact)  # not an address field
    assert redact("posting to https://hooks.example/services/T0/B0/XXXXSECRET") == f"posting to {MASK}"


def test_a_plain_field_is_never_masked_and_a_password_beside_it_always_is() -> None:
    redact = Redactor()
    env = {"SMTP_HOST": "smtp.example.net", "SMTP_PORT": "587", "SMTP_USER": "announcer", "SMTP_PASSWORD": "hunter22"}
    host = resolve("${SMTP_HOST}", env, redact, address=True, plain=True)
    port = resolve("${SMTP_PORT}", env, redact, plain=True)
    user = resolve("${SMTP_USER}", env, redact, plain=True)
    resolve("${SMTP_PASSWORD}", env, redact)
    said = f"login of {user} at {host}:{port} refused (password hunter22)"
    assert redact(said) == f"login of announcer at smtp.example.net:587 refused (password {MASK})"
