"""Keep secrets out of the gateway's own process environment.

``/proc/<pid>/environ`` (and ``ps eww``) show the environment a process was *started* with;
changing ``os.environ`` afterwards does not change it. Any process of the same user can read it,
Claude Code's tools included, so a gateway started with ``CC_API_KEY``, a database URL with its
password, a webhook secret or cloud tokens in its environment would show them to the model.

So ``cc-api run`` hands its environment over to itself: when it holds anything beyond the
harmless basics, it writes the rest into a pipe and re-executes itself (same pid) with only the
basics, and the new image reads the pipe back into ``os.environ`` — in memory, where the gateway,
the SDK and the Claude Code children it starts still find every value. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from ccapi.childproc import SESSION_BASICS

ENV_FD_OPTION = "--env-fd"

_PUBLIC_NAMES = SESSION_BASICS | {"VIRTUAL_ENV", "NOTIFY_SOCKET", "INVOCATION_ID", "CC_API_HOME"}
_PUBLIC_PREFIXES = ("LC_", "XDG_", "PYTHON")


def is_public(name: str) -> bool:
    """Names that may stay in the gateway's visible environment: locale, paths, the state
    directory, and what Python needs to start again. Everything else is handed over."""
    return name in _PUBLIC_NAMES or name.startswith(_PUBLIC_PREFIXES)


def private_part(env: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not is_public(name)}


def reexec_privately(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Exec ``python -m ccapi ARGV --env-fd N`` with only the public part of ``env`` visible; the
    private part waits in the pipe ``N``. The pipe is filled before the exec, so it must fit in
    the pipe's buffer (64 KiB on Linux and macOS): a larger environment is refused."""
    payload = json.dumps(private_part(env)).encode()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        written = os.write(write_end, payload)
    except BlockingIOError:
        written = 0
    os.close(write_end)
    if written != len(payload):
        sys.exit(f"cc-api: the environment is too large ({len(payload)} bytes) to hand over privately")
    os.set_inheritable(read_end, True)
    public = {name: value for name, value in env.items() if is_public(name)}
    command = [sys.executable, "-m", "ccapi", *argv, ENV_FD_OPTION, str(read_end)]
    os.execve(command[0], command, public)


def receive(fd: int) -> dict[str, str]:
    """Read what ``reexec_privately`` put in the pipe, and close it (nothing is left to read there)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    data = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(data, dict):
        raise ValueError("the handed-over environment is not an object")
    return {str(name): str(value) for name, value in data.items()}
