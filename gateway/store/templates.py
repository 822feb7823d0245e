"""Message templates of each account"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, utc_iso


class TemplateStore(StoreBase):
    """Message templates of each account."""

    def insert_template(self, account_id: int, name: str, data: str, *, now: datetime) -> int:
        """Store a template and return its id."""
        with self.transaction():
            return self._insert(
                "templates",
                {"account_id": account_id, "name": name, "data": data, "created_at": utc_iso(now)},
            )

    def templates(
        self, account_id: int, *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of an account's templates."""
        total = int(
            self.conn.execute(
                "SELECT COUNT(*) FROM templates WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
        )
        rows = self.conn.execute(
            "SELECT * FROM templates WHERE account_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (account_id, -1 if limit is None else limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def template(self, account_id: int, template_id: int) -> dict[str, Any] | None:
        """One template of an account."""
        row = self.conn.execute(
            "SELECT * FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id)
        ).fetchone()
        return dict(row) if row is not None else None

    def delete_template(self, account_id: int, template_id: int) -> bool:
        """Delete one template of an account; False if there was none."""
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id)
            )
        return cursor.rowcount == 1
