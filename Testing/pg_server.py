"""Start a private PostgreSQL cluster on a loopback port for tests (no system service used).

``initdb`` refuses to run as root, so as root the cluster is owned by the ``postgres`` system user
(created by Debian's postgresql package) and its commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for cand in PG_BIN_CANDIDATES:
        if (cand / name).exists():
            return str(cand / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresUnavailableError(RuntimeError):
    """The server could not be started here; the message says why."""


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh PostgreSQL server; stop and delete it afterwards."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailableError(
            "initdb/pg_ctl not found (install Debian package postgresql)"
        )
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        if not shutil.which("runuser"):
            raise PostgresUnavailableError("running as root without runuser to drop privileges")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="refracture-pg-"))
    data = base / "data"
    if as_root:
        shutil.chown(base, "postgres")
    port = _free_port()
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            text=True,
        )
        opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base}"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        shutil.rmtree(base, ignore_errors=True)
        raise PostgresUnavailableError(
            f"PostgreSQL did not start: {detail.strip()[:300]}"
        ) from None
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
