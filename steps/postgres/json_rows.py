"""v1's rows as JSON Lines, read the one way that the export and the verifications share.

The text of a row must depend on the row alone, never on the server's, the database's or the
role's settings, and every row must be one line:

- The session pins what `row_to_json` writes with (`EXACT_SESSION`): timestamps with a time
  zone in UTC (in the server's zone, year 1 comes out with a local-mean-time offset and a
  ` BC` suffix no parser takes), ISO dates, ISO 8601 intervals, floats to the digit that reads
  back exactly, bytea in hex. Passed as connection options, they override what the database
  and the role set (`ALTER DATABASE|ROLE ... SET`).
- `json` columns are read as `jsonb`: `row_to_json` copies a `json` value verbatim, line
  breaks and all, where `jsonb` writes it normalised, on one line. (A `json` value with a key
  twice keeps the last, as `jsonb` does.)
- The types of the columns are kept in the export's manifest (`column_types`), so that the
  transform knows a number column from a text one: `row_to_json` writes NaN and the
  infinities of `real`, `double precision` and `numeric` as the strings "NaN", "Infinity",
  "-Infinity".
"""

from __future__ import annotations

from typing import Any

# Client options: the server applies them over the database's and the role's settings.
EXACT_SESSION = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex"
)
# CSV with these quote and delimiter characters passes row_to_json's output through unchanged:
# JSON escapes every control character inside strings, and no value is written on two lines
# (json columns are read as jsonb), so neither character nor a line break can occur in a row.
COPY_OPTIONS = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"

# The alias of the row row_to_json takes. PostgreSQL reads a name as a column before a table,
# so a plain alias (`r`) would be a column of the same name where the table has one.
ROW = '"v1 row"'

# Types whose values row_to_json copies verbatim, and what to read them as instead.
_NORMALISED = {"json": "jsonb", "json[]": "jsonb[]"}


def column_types(conn: Any, source: str) -> dict[str, str]:
    """Each column of `source` (a SELECT) and its type, as `format_type` names it."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({source}) s LIMIT 0".encode())
        oids = [(column.name, column.type_code) for column in cur.description or []]
        names = dict(
            conn.execute(
                "SELECT oid, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)",
                ([oid for _, oid in oids],),
            ).fetchall()
        )
    return {name: str(names.get(oid, "unknown")) for name, oid in oids}


def rows_as_json(source: str, types: dict[str, str], where: str = "") -> str:
    """A SELECT of one JSON text per row of `source`, with json columns normalised; `where`
    names the row's columns as `ROW.column`."""
    from psycopg import sql

    if not any(kind in _NORMALISED for kind in types.values()):
        inner = source
    else:
        columns = []
        for name, kind in types.items():
            column = sql.Identifier(name).as_string(None)
            cast = _NORMALISED.get(kind)
            columns.append(f"s.{column}::{cast} AS {column}" if cast else f"s.{column}")
        inner = f"SELECT {', '.join(columns)} FROM ({source}) s"
    return f"SELECT row_to_json({ROW}) FROM ({inner}) {ROW}" + (f" WHERE {where}" if where else "")


def copy_rows_as_json(source: str, types: dict[str, str], where: str = "") -> str:
    """The COPY that streams `rows_as_json` as lines, with no work per row in Python."""
    return f"COPY ({rows_as_json(source, types, where)}) TO STDOUT WITH ({COPY_OPTIONS})"
