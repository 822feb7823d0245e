"""A throwaway PostgreSQL cluster for the tests: `initdb` + `pg_ctl` in a temporary directory.

No root service and no TCP port: the server listens on a Unix socket inside its own directory,
so parallel runs by other engineers on the same box never meet. PostgreSQL refuses to run as
root; when the suite runs as root the cluster's processes run as `nobody` (via `runuser`), the
directory given to that user. Each test gets its own database, copied from a migrated template
(`CREATE DATABASE … TEMPLATE`, a file copy: a few milliseconds).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from gateway.store import Store

SUPERUSER = "smsgw"
TEMPLATE = "smsgw_template"
_UNPRIVILEGED = "nobody"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<ver>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    if not found:
        raise RuntimeError("no PostgreSQL server: install the Debian package (make apt)")
    return Path(found[-1]).parent


class Cluster:
    """One PostgreSQL server in a temporary directory, for one test session (or benchmark)."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="smsgw-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(_UNPRIVILEGED)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", _UNPRIVILEGED, "--"]
        self._names = itertools.count(1)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # The suite needs no durability from the server (no test cuts its power); a benchmark
        # does, so that a COMMIT costs what it costs on a real box.
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.dir}'",
            "-c max_connections=100",
        ]
        if not durable:
            options += ["-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off"]
        self._options = " ".join(options)
        self._template_ready = False
        self.start_server()

    def start_server(self) -> None:
        """Start the server (again, after stop_server): the same data, socket and options."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-o", self._options, "-w", "start",
        )  # fmt: skip
        self.admin = psycopg.connect(self.url("postgres"), autocommit=True)

    def stop_server(self) -> None:
        """Stop the server, keeping its data (every client's connection is cut): a restart of
        the database server. Only on a cluster of the test's own."""
        self.admin.close()
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def url(self, database: str) -> str:
        """A libpq URL for `database` over the cluster's socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.dir}"

    def create_database(self, *, migrated: bool = True) -> str:
        """A new database (migrated to the current schema, or empty); its URL."""
        name = f"test_{next(self._names)}"
        if migrated and not self._template_ready:
            self.admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            self.admin.execute(f"CREATE DATABASE {TEMPLATE}")
            Store.open(self.url(TEMPLATE)).close()
            self._template_ready = True
        template = TEMPLATE if migrated else "template0"
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database` (closing anything still connected)."""
        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.admin.close()
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # stopped already (stop_server)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
