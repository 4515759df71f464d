"""Line numbers for the keys of a JSON document, as `cockpit.tomlpos` gives them for TOML.

`json` parses but keeps no positions, and a migration file's problems must name their line.
This scanner walks a document `json` already accepted and records the line of every key and
array element under its path: `("data", 2, "original")`.
"""

from __future__ import annotations

import bisect
import json
import re

from cockpit.tomlpos import KeyLines

Path = tuple[str | int, ...]
_SKIP = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def scan(text: str) -> KeyLines:
    lines: dict[Path, int] = {}
    _Scanner(text, lines).value(0, ())
    return KeyLines(lines)


class _Scanner:
    def __init__(self, text: str, lines: dict[Path, int]) -> None:
        self.text = text
        self.lines = lines
        self.newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def skip(self, pos: int) -> int:
        match = _SKIP.match(self.text, pos)
        return match.end() if match else pos

    def value(self, pos: int, path: Path) -> int:
        pos = self.skip(pos)
        char = self.text[pos]
        if char == "{":
            return self.object(pos + 1, path)
        if char == "[":
            return self.array(pos + 1, path)
        if char == '"':
            return json.decoder.scanstring(self.text, pos + 1)[1]  # type: ignore[attr-defined,no-any-return]
        match = _SCALAR.match(self.text, pos)
        assert match is not None, "scan() reads only what json accepted"
        return match.end()

    def object(self, pos: int, path: Path) -> int:
        pos = self.skip(pos)
        if self.text[pos] == "}":
            return pos + 1
        while True:
            pos = self.skip(pos)
            key, end = json.decoder.scanstring(self.text, pos + 1)  # type: ignore[attr-defined]
            self.lines.setdefault((*path, key), self.line_at(pos))
            pos = self.skip(end)
            pos = self.value(pos + 1, (*path, key))  # past the colon
            pos = self.skip(pos)
            if self.text[pos] == "}":
                return pos + 1
            pos += 1  # the comma

    def array(self, pos: int, path: Path) -> int:
        pos = self.skip(pos)
        if self.text[pos] == "]":
            return pos + 1
        index = 0
        while True:
            pos = self.skip(pos)
            self.lines[(*path, index)] = self.line_at(pos)
            pos = self.value(pos, (*path, index))
            pos = self.skip(pos)
            if self.text[pos] == "]":
                return pos + 1
            pos += 1
            index += 1
