"""Migration files in the second seed's format: the seed's own example loads; every problem of a
folder is reported at once, each at its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.files import MigrationsError, load_folder

# The seed's example, as it prints it.
SEED_EXAMPLE = {
    "version": "001",
    "name": "initial_schema",
    "description": "Initial database schema",
    "schema": {
        "users": {
            "name": "string",
            "email": "string",
            "password_hash": "string?",
            "role": "string?",
            "created_at": "number",
            "updated_at": "number",
        }
    },
    "data": [
        {
            "type": "insert",
            "table": "users",
            "data": {
                "name": "System Administrator",
                "email": "admin@cryoprotect.com",
                "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99",
                "role": "admin",
                "created_at": 1620000000000,
                "updated_at": 1620000000000,
            },
        }
    ],
    "indexes": [{"table": "users", "name": "by_email", "fields": ["email"]}],
}


def _write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(document, indent=2) if not isinstance(document, str) else document)
    return path


def test_the_seed_s_example_loads(tmp_path: Path) -> None:
    _write(tmp_path, "001_initial_schema.json", SEED_EXAMPLE)
    [loaded] = load_folder(tmp_path)
    migration = loaded.migration
    assert (migration.version, migration.name) == ("001", "initial_schema")
    assert migration.schema_["users"]["password_hash"] == "string?"
    assert migration.indexes[0].fields == ["email"]


def test_every_problem_of_a_folder_at_its_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "001_initial_schema.json", SEED_EXAMPLE)
    second = {
        "version": "002",
        "name": "roles",
        "schema": {"teams": {"title": "strng", "owner": "id:users"}},
        "data": [
            {
                "type": "update",
                "table": "users",
                "where": {"email": "admin@cryoprotect.com"},
                "set": {"role": "owner", "name": "Admin"},
                "original": {"role": "admin"},
            },
            {"type": "delete", "table": "usres", "where": {"email": "x@y.z"}, "original": {"email": "x@y.z"}},
            {"type": "insert", "table": "users", "data": {"name": "B", "nickname": "b"}},
        ],
        "indexes": [{"table": "teams", "name": "by_slug", "fields": ["slug"]}],
    }
    _write(tmp_path, "002_roles.json", second)
    _write(tmp_path, "003_broken.json", '{\n  "version": "003",\n  "name": "broken",\n}\n')
    _write(tmp_path, "005_late.json", {"version": "005", "name": "late"})
    _write(tmp_path, "6-wrong-name.json", {"version": "006", "name": "wrong"})
    with pytest.raises(MigrationsError) as caught:
        load_folder(tmp_path)
    text = str(caught.value).replace(str(tmp_path) + "/", "")
    lines = (tmp_path / "002_roles.json").read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if fragment in line)

    original, nickname = line_of('"original": {'), line_of('"name": "B"') - 1  # the insert's "data"
    fields = line_of('"fields"')

    found = text.splitlines()
    # json's wording of a syntax error changes between Python versions; its line does not.
    assert found[6].startswith("003_broken.json:4: not valid JSON: ")
    found[6] = "003_broken.json:4: not valid JSON"
    assert found == [
        f"002_roles.json:{line_of('strng')}: teams.title: unknown type 'strng' (did you mean 'string'?) "
        "(one of string, number, float64, int64, boolean, bytes, null, any, array, object, or id:<table>; "
        "`?` for optional)",
        f"002_roles.json:{original}: update of users: original lacks name; "
        "the rollback needs each set field's value before",
        f"002_roles.json:{line_of('usres')}: delete into 'usres', a table no migration up to 002 declares "
        "(did you mean 'users'?)",
        f"002_roles.json:{nickname}: insert into users: no field nickname in its schema",
        f"002_roles.json:{nickname}: insert into users: lacks created_at, email, updated_at, which are not optional",
        f"002_roles.json:{fields}: index by_slug on teams: no field slug in its schema",
        "003_broken.json:4: not valid JSON",
        "005_late.json:2: version 005 out of sequence: 003 comes first",
        "6-wrong-name.json: a migration file is named NNN_snake_name.json, e.g. 004_add_tags.json",
    ]
