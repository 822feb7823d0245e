"""One running daemon per SQLite database: an exclusive flock on a file beside it.

A second `smsgw serve` (or demo, or a manual start beside the systemd unit) on the same file
would turn the first one's `sending` parts uncertain in its crash recovery and then drive the
same modems and claim the same queued work. The daemon takes this lock before it opens the
database and holds it for its lifetime; the kernel lets it go when the process ends, kill -9
included, so a restart after a crash starts at once. Commands that only open the store (backup,
accounts, top, ...) never take it and run beside the daemon; one whose open would migrate the
schema (a newer smsgw beside a daemon not yet restarted) takes it for the migration, so it is
refused beside a running daemon and no daemon starts mid-migration (Store.open). PostgreSQL
(fleet mode) has no such file: its box_id row does that job (gateway.leases).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from gateway.store.errors import StoreOpenError

LOCK_SUFFIX = ".daemon.lock"


class DatabaseInUseError(StoreOpenError):
    """Another running smsgw daemon holds this database's lock: this one must not start."""


def lock_path(database: Path) -> Path:
    """The lock file of the SQLite file `database` (beside it: writable wherever it is)."""
    return database.with_name(database.name + LOCK_SUFFIX)


class DaemonLock:
    """This process's hold on a database's daemon lock (an open, locked, non-inheritable fd)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd

    @classmethod
    def take(cls, database: Path) -> DaemonLock:
        """Lock `database` for this daemon without waiting, or raise DatabaseInUseError naming
        the holder's pid (as it wrote it: informational only)."""
        path = lock_path(database)
        # os.open makes the fd non-inheritable (O_CLOEXEC): a child the daemon starts (the
        # committer, a hook) never keeps the lock past the daemon's own end.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            writable = True
        except PermissionError:
            # Made by another user (a `sudo smsgw serve` once): a read-only fd locks as well.
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise StoreOpenError(f"cannot open {path}: {exc.strerror}") from exc
            writable = False
        except OSError as exc:
            raise StoreOpenError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreOpenError(f"cannot lock {path}: {exc.strerror}") from exc
            raise DatabaseInUseError(
                f"{database} is in use by another running smsgw ({_holder(path)})"
            ) from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @classmethod
    def check(cls, database: Path) -> None:
        """Raise DatabaseInUseError if a daemon holds `database` right now (taken and let go
        at once: for a start that writes before the daemon itself takes the lock)."""
        cls.take(database).release()

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race a daemon locking it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _holder(path: Path) -> str:
    """'pid N' as the holder wrote it, or why it is not known."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid not known yet"
