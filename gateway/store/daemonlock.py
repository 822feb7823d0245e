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
import logging
import os
import pwd
from pathlib import Path

from gateway.store.errors import StoreOpenError

LOCK_SUFFIX = ".daemon.lock"
# The kernel's table of file locks: who holds a lock file, whatever the file says (hidden from
# the systemd unit by ProcSubset=pid: there the pid the holder wrote is all there is).
PROC_LOCKS = Path("/proc/locks")

log = logging.getLogger(__name__)


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
        the holder's pid (the kernel's lock table's, else as it wrote it: informational only)."""
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
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise StoreOpenError(f"cannot lock {path}: {exc.strerror}") from exc
            try:
                holder = _holder(path, fd, writable)
            finally:
                os.close(fd)
            raise DatabaseInUseError(
                f"{database} is in use by another running smsgw ({holder})"
            ) from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        else:
            # It still locks; a refused start then finds the pid in /proc/locks, if it may read it.
            log.warning("this daemon's pid not written: %s", _read_only(path))
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


def _holder(path: Path, fd: int, writable: bool) -> str:
    """'pid N' of the process holding the lock on `fd`'s file (the kernel's, else as it wrote
    it), or why it is not known: a file read-only to this user (left by `sudo smsgw serve`) is
    most likely read-only to the holder too, which then wrote no pid there."""
    pid = _flock_holder(fd)
    if pid is not None:
        return f"pid {pid}"
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if text.isdigit() and _runs(int(text)):
        return f"pid {text}"
    if not writable:
        return f"pid not known: {_read_only(path)}"
    return "pid not known yet"  # between its lock and its write


def _flock_holder(fd: int) -> int | None:
    """The pid /proc/locks gives for the flock on `fd`'s file (None: not readable, not found,
    or a process outside this PID namespace)."""
    try:
        table = PROC_LOCKS.read_text()
    except OSError:
        return None
    held = os.fstat(fd)
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 12345 fe:00:2146733 0 EOF" (a waiter has "->" after "1:")
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if found == (os.major(held.st_dev), os.minor(held.st_dev), held.st_ino):
            return pid if pid > 0 else None
    return None


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _read_only(path: Path) -> str:
    """'PATH (owned by U) is read-only to ME: chown it to ME', for a lock file this process
    could only open read-only."""
    try:
        owner = _user(path.stat().st_uid)
    except OSError:
        owner = "?"
    me = _user(os.geteuid())
    return f"{path} (owned by {owner}) is read-only to {me}: chown it to {me}"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
