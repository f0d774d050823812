"""Reading the gateway's log file: the last lines, the lines since an offset, and following it
across rotation (``RotatingFileHandler`` renames the file and starts a new one)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = 64 * 1024
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, carriage returns,
    bidirectional overrides) a client may have put in a logged method, path or header shown as
    ``\\u001b``, which also keeps a JSON line valid JSON. Newlines and tabs stay."""
    return _CONTROLS.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


@dataclass(frozen=True)
class LogTail:
    lines: tuple[str, ...]
    end: int
    """Byte offset just after the last line read: where ``follow`` continues without a gap."""


def tail(path: Path, count: int) -> LogTail:
    """The last ``count`` lines, read backwards so a large log costs only what is shown."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return LogTail((), 0)
    with file:
        end = file.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return LogTail(tuple(lines[-count:]) if count > 0 else (), end)


def rotated_lines(path: Path, count: int, keep: int = 5) -> tuple[str, ...]:
    """The last ``count`` lines of the rotated files before ``path`` (``cc-api.log.1``, then ``.2``, ...), oldest
    first: what ``cc-api logs -n N`` shows above the current file's lines when that has fewer than ``N`` since the
    last rotation (just after one, it had next to none)."""
    older: tuple[str, ...] = ()
    for number in range(1, keep + 1):
        if count <= len(older):
            break
        lines = tail(path.with_name(f"{path.name}.{number}"), count - len(older)).lines
        if not lines:
            break
        older = lines + older
    return older


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def lines_since(path: Path, offset: int, limit: int) -> tuple[str, ...]:
    """At most the last ``limit`` lines written after ``offset`` (all of the file if it was rotated)."""
    try:
        with path.open("rb") as file:
            if file.seek(0, os.SEEK_END) >= offset:
                file.seek(offset)
            else:
                file.seek(0)
            lines = file.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ()
    return tuple(lines[-limit:])


def follow(path: Path, offset: int = 0, poll: float = 0.25) -> Iterator[str]:
    """Complete lines appended after ``offset``, forever; reopens the file when it is rotated
    or truncated, and waits for it to exist."""
    file = None
    partial = b""
    try:
        while True:
            if file is None:
                try:
                    file = path.open("rb")
                except FileNotFoundError:
                    time.sleep(poll)
                    continue
                file.seek(min(offset, file.seek(0, os.SEEK_END)))
            chunk = file.read(_BLOCK)
            if chunk:
                partial += chunk
                *complete, partial = partial.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                continue
            if _replaced(path, file):
                # What was written to the old file between the read above and its rotation is read before it is
                # left (it was lost), and a line it ends without a newline is not glued to the new file's first.
                rest = partial + file.read()
                partial = b""
                for line in rest.split(b"\n"):
                    if line:
                        yield line.decode("utf-8", errors="replace")
                file.close()
                file, offset = None, 0
                continue
            time.sleep(poll)
    finally:
        if file is not None:
            file.close()


def _replaced(path: Path, file: BinaryIO) -> bool:
    try:
        current = path.stat()
    except FileNotFoundError:
        return False  # mid-rotation: keep the old handle until the new file appears
    opened = os.fstat(file.fileno())
    return current.st_ino != opened.st_ino or current.st_size < file.tell()
