"""An export's physical lines: the file opened (gzip by magic number) and read line
by line in constant memory. Every reader of an export (the built-in formats in
loader, a shop's own in imports) starts here."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from portrait.ingest import parsing


def open_source(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(raw file, decompressed stream): gzip by magic number, not by name."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, which closes it
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw)
    return raw, stream


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, oversize) in constant memory: a line longer than
    MAX_LINE_BYTES is cut there and its rest skipped."""
    number = 0
    while True:
        line = stream.readline(parsing.MAX_LINE_BYTES)
        if not line:
            return
        number += 1
        oversize = len(line) >= parsing.MAX_LINE_BYTES and not line.endswith(b"\n")
        if oversize:
            while (rest := stream.readline(parsing.MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield number, line, oversize
