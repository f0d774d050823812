"""A real PostgreSQL server for tests: Debian's packages, a temporary data directory,
a free loopback port. Installed with apt when missing (CI runs as root); skipped with
the reason only where it cannot be installed."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.gateway import free_port


@dataclass(frozen=True)
class PostgresServer:
    port: int
    data_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"ccapi_{uuid.uuid4().hex[:12]}"
        _as_postgres(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-d", "postgres", "-q", "-c", f"CREATE DATABASE {name}"]
        )
        return self.url(name)


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def find_or_install() -> tuple[Path | None, str]:
    """PostgreSQL's bin directory, or None and why not."""
    if _bin_dir() is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return None, "PostgreSQL is not installed and cannot be installed (needs root and apt-get)"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        installed = subprocess.run(
            # pytest-xdist workers may install at once: the later ones wait for dpkg's lock, then find it installed
            ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", "postgresql"],
            env=env,
            capture_output=True,
            text=True,
        )
        if installed.returncode != 0:
            return None, f"apt-get install postgresql failed: {installed.stderr[-500:]}"
    return _bin_dir(), ""


def _as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user when we are root."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + command, check=True, capture_output=True, text=True, **kwargs)


def start(bin_dir: Path) -> tuple[PostgresServer, subprocess.Popen]:
    """Start a server in a fresh directory the ``postgres`` user owns (pytest's own temporary
    directories are private to root); ``stop`` removes it."""
    root = Path(tempfile.mkdtemp(prefix="ccapi-postgres-"))
    data_dir, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (root, socket_dir):
            shutil.chown(path, "postgres")
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    port = free_port()
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [
            *prefix,
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "postgres.log").open("wb"),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if ready.returncode == 0:
            return PostgresServer(port, data_dir), process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"PostgreSQL did not start:\n{(root / 'postgres.log').read_text()[-2000:]}")


def stop(server: PostgresServer, process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(20)
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
