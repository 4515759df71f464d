"""Line numbers for the keys of a TOML document.

`tomllib` parses but keeps no positions, and `cockpit check` must name the line of the
offending key. This scanner walks a document that `tomllib` already accepted and records the
line of every key and array element under its path, with arrays of tables indexed the way
`tomllib` indexes them: `("step", 3, "with", "roles", 0)`.
"""

from __future__ import annotations

from collections.abc import Sequence

Path = tuple[str | int, ...]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class KeyLines:
    """The line of each key path in one document; lookups fall back to the nearest parent."""

    def __init__(self, lines: dict[Path, int]) -> None:
        self._lines = lines

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of its nearest recorded ancestor (1 for the document)."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return 1

    def has(self, path: Sequence[str | int]) -> bool:
        return tuple(path) in self._lines

    def children(self, path: Sequence[str | int]) -> list[str | int]:
        p = tuple(path)
        return [k[len(p)] for k in self._lines if len(k) == len(p) + 1 and k[: len(p)] == p]


def scan(text: str) -> KeyLines:
    """Scan a valid TOML document and return the lines of its keys."""
    return _Scanner(text).run()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[Path, int] = {}
        self.aot_counts: dict[Path, int] = {}
        # Maps a header path (as written) to the resolved path of arrays of tables inside it.
        self.aot_paths: set[Path] = set()

    # -- low-level movement -------------------------------------------------

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.s[j] if j < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.s):
                if self.s[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance()

    def skip_ws_nl_comments(self) -> None:
        while True:
            c = self.peek()
            if c in (" ", "\t", "\r", "\n"):
                self.advance()
            elif c == "#":
                while self.peek() not in ("\n", ""):
                    self.advance()
            else:
                return

    def skip_to_eol(self) -> None:
        while self.peek() not in ("\n", ""):
            self.advance()

    # -- structure ----------------------------------------------------------

    def run(self) -> KeyLines:
        current: Path = ()
        while True:
            self.skip_ws_nl_comments()
            c = self.peek()
            if c == "":
                break
            if c == "[":
                current = self.header()
            else:
                self.key_value(current)
            self.skip_to_eol()
        return KeyLines(self.lines)

    def header(self) -> Path:
        line = self.line
        is_aot = self.peek(1) == "["
        self.advance(2 if is_aot else 1)
        self.skip_ws()
        keys = self.dotted_key()
        self.skip_ws()
        self.advance(2 if is_aot else 1)
        resolved = self.resolve(keys[:-1]) + (keys[-1],)
        if is_aot:
            index = self.aot_counts.get(resolved, 0)
            self.aot_counts[resolved] = index + 1
            self.aot_paths.add(resolved)
            self.lines.setdefault(resolved, line)
            path = resolved + (index,)
        else:
            path = self.resolve(keys)
        self.lines[path] = line
        return path

    def resolve(self, keys: Sequence[str]) -> Path:
        """Turn a header's dotted key into a path, entering the last table of each array."""
        out: list[str | int] = []
        for key in keys:
            out.append(key)
            if tuple(out) in self.aot_paths:
                out.append(self.aot_counts[tuple(out)] - 1)
        return tuple(out)

    def key_value(self, table: Path) -> None:
        line = self.line
        keys = self.dotted_key()
        path = table + tuple(keys)
        for depth in range(1, len(keys) + 1):
            self.lines.setdefault(table + tuple(keys[:depth]), line)
        self.lines[path] = line
        self.skip_ws()
        self.advance()  # '='
        self.skip_ws()
        self.value(path)

    def dotted_key(self) -> list[str]:
        keys = [self.simple_key()]
        while True:
            self.skip_ws()
            if self.peek() == ".":
                self.advance()
                self.skip_ws()
                keys.append(self.simple_key())
            else:
                return keys

    def simple_key(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        start = self.i
        while self.peek() in _BARE and self.peek() != "":
            self.advance()
        return self.s[start : self.i]

    # -- values -------------------------------------------------------------

    def value(self, path: Path) -> None:
        c = self.peek()
        if c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        elif c == '"':
            if self.s.startswith('"""', self.i):
                self.multiline('"""')
            else:
                self.basic_string()
        elif c == "'":
            if self.s.startswith("'''", self.i):
                self.multiline("'''")
            else:
                self.literal_string()
        else:
            while self.peek() not in (",", "]", "}", "\n", "#", "") and not (
                self.peek() in (" ", "\t") and self._scalar_ends_here()
            ):
                self.advance()

    def _scalar_ends_here(self) -> bool:
        # A space may sit inside a datetime ("1979-05-27 07:32:00"): it ends the scalar only
        # when what follows is not a digit.
        nxt = self.peek(1)
        return not nxt.isdigit()

    def array(self, path: Path) -> None:
        self.advance()  # '['
        index = 0
        while True:
            self.skip_ws_nl_comments()
            if self.peek() == "]":
                self.advance()
                return
            self.lines[path + (index,)] = self.line
            self.value(path + (index,))
            index += 1
            self.skip_ws_nl_comments()
            if self.peek() == ",":
                self.advance()

    def inline_table(self, path: Path) -> None:
        self.advance()  # '{'
        while True:
            self.skip_ws_nl_comments()
            if self.peek() == "}":
                self.advance()
                return
            if self.peek() == "":
                return
            self.key_value(path)
            self.skip_ws_nl_comments()
            if self.peek() == ",":
                self.advance()

    def basic_string(self) -> str:
        self.advance()  # opening quote
        out: list[str] = []
        while self.peek() not in ('"', ""):
            if self.peek() == "\\":
                out.append(self.peek() + self.peek(1))
                self.advance(2)
            else:
                out.append(self.peek())
                self.advance()
        self.advance()
        raw = "".join(out)
        if "\\" in raw:
            try:
                import tomllib

                return str(tomllib.loads(f'k = "{raw}"')["k"])
            except Exception:
                return raw
        return raw

    def literal_string(self) -> str:
        self.advance()
        start = self.i
        while self.peek() not in ("'", ""):
            self.advance()
        text = self.s[start : self.i]
        self.advance()
        return text

    def multiline(self, quote: str) -> None:
        self.advance(3)
        while self.i < len(self.s):
            if quote == '"""' and self.peek() == "\\":
                self.advance(2)
                continue
            if self.s.startswith(quote, self.i):
                # Up to two quote characters may close the string together with the delimiter.
                self.advance(3)
                while self.peek() == quote[0]:
                    self.advance()
                return
            self.advance()
