"""Box-wide settings: one value per key (the dashboard's admin password hash, its session key)."""

from __future__ import annotations

from datetime import datetime

from gateway.store.base import StoreBase, utc_iso


class SettingsStore(StoreBase):
    """Box-wide settings, one text value per key."""

    def setting(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else None

    def set_settings(self, values: dict[str, str], *, now: datetime) -> None:
        """Store several settings in one transaction (a password hash and its session key)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                [(key, value, utc_iso(now)) for key, value in values.items()],
            )

    def setting_if_absent(self, key: str, value: str, *, now: datetime) -> str:
        """Store `value` unless `key` has one already; return the value that is stored."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                (key, value, utc_iso(now)),
            )
            row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0])
