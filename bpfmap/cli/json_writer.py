"""bpftool's json_writer.c: the same bytes, separators and indentation included.

bpftool's ``-j`` output is compact (no newline until the end) and ``-p`` indents
by four spaces per level; both come from this one writer, as in bpftool.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def write(self, text: str) -> None: ...


_ESCAPES = {
    "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b", "\\": "\\\\", '"': '\\"',
}  # fmt: skip
_ESCAPE_TABLE = str.maketrans(_ESCAPES)

#: print_hex_data_json()'s item for each byte value: "0x2a".
_HEX_ITEMS = tuple(f'"0x{b:02x}"' for b in range(256))


def json_string(text: str) -> str:
    """jsonw_puts(): C escapes only, as bpftool writes them."""
    return '"' + text.translate(_ESCAPE_TABLE) + '"'


class JsonWriter:
    """One JSON document on ``out``, written as bpftool's json_writer.c writes it."""

    def __init__(self, out: Sink, pretty: bool) -> None:
        self.out = out
        self.pretty = pretty
        self.depth = 0
        self.sep = ""

    def _eol(self) -> None:
        if self.pretty:
            self.out.write("\n" + "    " * self.depth)

    def _eor(self) -> None:
        if self.sep:
            self.out.write(self.sep)
        self.sep = ","

    def _begin(self, c: str) -> None:
        self._eor()
        self.out.write(c)
        self.depth += 1
        self.sep = ""

    def _end(self, c: str) -> None:
        self.depth -= 1
        if self.sep:
            self._eol()
        self.out.write(c)
        self.sep = ","

    def start_object(self) -> None:
        self._begin("{")

    def end_object(self) -> None:
        self._end("}")

    def start_array(self) -> None:
        self._begin("[")

    def end_array(self) -> None:
        self._end("]")

    def name(self, name: str) -> None:
        self._eor()
        self._eol()
        self.sep = ""
        self.out.write(json_string(name) + (": " if self.pretty else ":"))

    def printf(self, text: str) -> None:
        self._eor()
        self.out.write(text)

    def string(self, value: str) -> None:
        self._eor()
        self.out.write(json_string(value))

    def null(self) -> None:
        self.printf("null")

    def string_field(self, name: str, value: str) -> None:
        self.name(name)
        self.string(value)

    def int_field(self, name: str, value: int) -> None:
        self.name(name)
        self.printf(str(value))

    def bool_field(self, name: str, value: bool) -> None:
        self.name(name)
        self.printf("true" if value else "false")

    def null_field(self, name: str) -> None:
        self.name(name)
        self.null()

    def hex_data(self, data: bytes) -> None:
        """print_hex_data_json(): an array of "0x.." strings (one write, not one per byte)."""
        self.start_array()
        if data:
            # What a printf() per byte writes: items joined by the separator.
            self.out.write(",".join(map(_HEX_ITEMS.__getitem__, data)))
            self.sep = ","
        self.end_array()

    def destroy(self) -> None:
        self.out.write("\n")
