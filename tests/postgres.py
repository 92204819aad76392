"""A throwaway PostgreSQL server for integration tests (Debian's ``postgresql``: initdb, pg_ctl).

The cluster lives in a temporary folder, listens on 127.0.0.1 on a free port (its unix socket in the
same folder) and is stopped and removed after. PostgreSQL refuses to run as root: as root, the
server runs as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.procs import free_port

__all__ = ["PostgresServer", "postgres_bin", "postgres_server"]


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise AssertionError("PostgreSQL is not installed: run `bash scripts/install-system-deps.sh` (make test does)")
    return Path(found[-1]).parent


class PostgresServer:
    """A running server: :meth:`create_database` gives a fresh database's DSN."""

    def __init__(self, bin_dir: Path, port: int, run_as: list[str]):
        self.bin_dir, self.port, self.run_as = bin_dir, port, run_as

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*self.run_as, str(self.bin_dir / tool), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)

    def create_database(self) -> str:
        name = f"audit_{uuid.uuid4().hex[:12]}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "tocsin", name)
        return f"postgresql://tocsin@127.0.0.1:{self.port}/{name}"

    def sql(self, dsn: str, statement: str) -> str:
        """Run one statement with psql; its unaligned output."""
        psql = shutil.which("psql") or str(self.bin_dir / "psql")
        done = subprocess.run(
            [psql, dsn, "-At", "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Initialise, start, and after the block stop and remove a PostgreSQL cluster."""
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    os.chmod(root, 0o755)
    port = free_port()
    server = PostgresServer(bin_dir, port, run_as)
    data = root / "data"
    server.run("initdb", "-D", str(data), "-U", "tocsin", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    server.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start")
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
