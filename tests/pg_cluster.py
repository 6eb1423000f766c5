"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, initdb into a fresh
temporary directory, `pg_ctl` on a free loopback port (TCP on 127.0.0.1 only, the unix
socket inside the cluster directory), one database and one password user, removed after.

initdb refuses to run as root, so under root the server runs as Debian's `postgres`
system user (`runuser`), in a directory handed to that user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PgCluster:
    """Where the cluster listens and how to log in (what CONTIMG_PG_* carry)."""

    host: str
    port: int
    db: str
    user: str
    password: str

    def environ(self) -> dict[str, str]:
        """The CONTIMG_PG_* variables deploy/dagster.yaml reads."""
        return {"CONTIMG_PG_HOST": self.host, "CONTIMG_PG_PORT": str(self.port),
                "CONTIMG_PG_DB": self.db, "CONTIMG_PG_USER": self.user,
                "CONTIMG_PG_PASSWORD": self.password}

    def connect(self, db: str | None = None):
        """A psycopg2 connection as the cluster's password user (autocommit), to `db`
        (default: the cluster's database)."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, dbname=db or self.db, user=self.user,
                                password=self.password, connect_timeout=10)
        conn.autocommit = True
        return conn


def pg_bin_dir() -> Path | None:
    """The newest installed server's bin directory (e.g. /usr/lib/postgresql/15/bin)."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_cluster(db: str = "contimg", user: str = "contimg",
                      password: str = "contimg-test-pw") -> Iterator[PgCluster]:
    """Start a fresh cluster, create `db` owned by `user` (password login over TCP), yield
    it; stop it (immediate) and delete its directory afterwards, whatever happened."""
    bindir = pg_bin_dir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql: run scripts/setup.sh")
    as_root = os.geteuid() == 0
    # 0o755 so the postgres user can reach the cluster directory inside it
    base = Path(tempfile.mkdtemp(prefix="contimg-pg-"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"  # sock also holds the server log
    sock.mkdir()
    prefix: list[str] = []
    if as_root:
        owner = pwd.getpwnam("postgres")
        os.chown(sock, owner.pw_uid, owner.pw_gid)
        data.mkdir(mode=0o700)
        os.chown(data, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=base)
        if done.returncode:
            log = base / "sock" / "server.log"
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr}"
                               + (log.read_text()[-2000:] if log.exists() else ""))

    port = free_port()
    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        # password logins over TCP; trust stays only on the cluster's own unix socket
        with open(data / "pg_hba.conf", "w") as hba:
            hba.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock}"
                   " -c fsync=off -c max_connections=200")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(sock / "server.log"),
            "-w", "-t", "60", "start")
        started = True
        psql = [str(bindir / "psql"), "-h", str(sock), "-p", str(port), "-U", "postgres",
                "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c"]
        run(*psql, f"CREATE USER {user} WITH CREATEDB PASSWORD '{password}'")
        run(*psql, f"CREATE DATABASE {db} OWNER {user}")
        yield PgCluster("127.0.0.1", port, db, user, password)
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "stop"], capture_output=True, cwd=base)
        shutil.rmtree(base, ignore_errors=True)
