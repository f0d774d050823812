"""The gateway's state is private to its user: sessions, transcripts, tool output and logs.

The gateway runs with umask 077, so everything it creates (database, JSON-dir files, logs, the
state file) is 0600/0700; at start-up it also tightens what an older version or another umask
left readable to others. Claude Code children get the user's umask back (``ccapi.childproc``):
files the model writes into a project are the user's ordinary files.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ccapi.config import Settings

PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Create files private for the duration of the block (``cc-api start``'s log, before the gateway runs)."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def state_paths(settings: Settings) -> list[Path]:
    """The gateway's state: ``$CC_API_HOME`` and, where they are set elsewhere, the JSON-dir folder
    or the SQLite database with its companion files."""
    found = [settings.paths.home]
    if settings.session_dir is not None:
        found.append(settings.session_dir)
    elif not settings.database_url:
        database = settings.database_path
        found += [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    return found


def exposed_by(folder: Path, settings: Settings) -> Literal["root", "state"] | None:
    """What a Claude Code working in ``folder`` could write to, Bash's sandbox letting it write where it works:
    the whole file system (``folder`` is its root), or the gateway's state (``folder`` is in it); else ``None``.
    A session's own ``cwd`` and ``CC_API_CWD`` are refused for either."""
    place = folder.resolve()
    if place == Path(place.anchor):
        return "root"
    if any(place.is_relative_to(path.resolve()) for path in state_paths(settings)):
        return "state"
    return None


def tighten(settings: Settings) -> dict[str, str]:
    """Take group and other permissions off the gateway's state, folders walked through (symbolic
    links within are not followed; a state path that is itself one, as a home kept elsewhere is, is taken
    for its target); says what changed, or why not, by path."""
    changes: dict[str, str] = {}
    for given in state_paths(settings):
        root = given.resolve() if given.is_symlink() else given
        if root.is_dir():
            for folder, _, files in os.walk(root):
                for name in (".", *files):  # each folder is "." once walked into
                    _tighten(Path(folder, name), changes)
        else:
            _tighten(root, changes)
    return changes


def _tighten(path: Path, changes: dict[str, str]) -> None:
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.is_symlink():
            path.chmod(mode & 0o700)
            changes[str(path)] = f"{mode:04o} -> {mode & 0o700:04o}"
    except FileNotFoundError:
        pass
    except OSError as exc:
        changes[str(path)] = f"not changed: {exc.strerror}"
