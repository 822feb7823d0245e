"""SIMs (bound by ICCID/IMSI), modems (by IMEI), and which accounts may use which SIM"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, utc_iso

SIM_LIMIT_COLUMNS = frozenset(
    {"throttle_interval", "cap_per_minute", "cap_per_hour", "cap_per_day", "cap_recipients_per_day"}
)


class SimStore(StoreBase):
    """SIMs (bound by ICCID/IMSI), modems (by IMEI), and which accounts may use which SIM."""

    def bind_sim(
        self, *, iccid: str | None, imsi: str | None, msisdn: str = "", now: datetime
    ) -> int:
        """Find or create the row of this SIM card (by ICCID, else IMSI); return its id."""
        if not iccid and not imsi:
            raise ValueError("a SIM is bound by ICCID or IMSI")
        with self.transaction():
            row = None
            if iccid:
                row = self.conn.execute("SELECT id FROM sims WHERE iccid = ?", (iccid,)).fetchone()
            if row is None and imsi:
                row = self.conn.execute(
                    "SELECT id FROM sims WHERE imsi = ? AND (iccid IS NULL OR iccid = ?)",
                    (imsi, iccid or ""),
                ).fetchone()
            if row is not None:
                sim_id = int(row[0])
                self.conn.execute(
                    "UPDATE sims SET iccid = COALESCE(iccid, ?), imsi = COALESCE(?, imsi),"
                    " msisdn = CASE WHEN ? != '' THEN ? ELSE msisdn END, last_seen = ?"
                    " WHERE id = ?",
                    (iccid or None, imsi or None, msisdn, msisdn, utc_iso(now), sim_id),
                )
                return sim_id
            cursor = self.conn.execute(
                "INSERT INTO sims (iccid, imsi, msisdn, state, last_seen, created_at)"
                " VALUES (?, ?, ?, 'present', ?, ?)",
                (iccid or None, imsi or None, msisdn, utc_iso(now), utc_iso(now)),
            )
            return int(cursor.lastrowid or 0)

    def bind_modem(
        self,
        *,
        imei: str,
        manufacturer: str,
        model: str,
        revision: str,
        port: str,
        sim_id: int | None,
        now: datetime,
    ) -> int:
        """Record a modem by IMEI (its port is only a last-seen hint) and the SIM inside it."""
        stamp = utc_iso(now)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO modems (imei, manufacturer, model, revision, last_port, state,"
                " last_seen) VALUES (?, ?, ?, ?, ?, 'ready', ?) ON CONFLICT(imei) DO UPDATE SET"
                " manufacturer = excluded.manufacturer, model = excluded.model,"
                " revision = excluded.revision, last_port = excluded.last_port,"
                " state = 'ready', last_seen = excluded.last_seen",
                (imei, manufacturer, model, revision, port, stamp),
            )
            modem_id = int(
                self.conn.execute("SELECT id FROM modems WHERE imei = ?", (imei,)).fetchone()[0]
            )
            if sim_id is not None:
                self.conn.execute(
                    "UPDATE sims SET modem_id = ?, state = 'present' WHERE id = ?",
                    (modem_id, sim_id),
                )
        return modem_id

    def set_modem_state(self, modem_id: int, state: str, *, now: datetime) -> None:
        """Mark a modem ready / gone; its SIM follows."""
        with self.transaction():
            self.conn.execute(
                "UPDATE modems SET state = ?, last_seen = ? WHERE id = ?",
                (state, utc_iso(now), modem_id),
            )
            self.conn.execute(
                "UPDATE sims SET state = ? WHERE modem_id = ?",
                ("present" if state == "ready" else "gone", modem_id),
            )

    def sim(self, sim_id: int) -> dict[str, Any] | None:
        """Return one SIM row as a dict."""
        row = self.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone()
        return dict(row) if row is not None else None

    def list_sims(self) -> list[dict[str, Any]]:
        """Every SIM with its modem (if any)."""
        rows = self.conn.execute(
            "SELECT s.*, m.imei, m.model, m.last_port, m.state AS modem_state FROM sims s"
            " LEFT JOIN modems m ON m.id = s.modem_id ORDER BY s.id"
        ).fetchall()
        return [dict(r) for r in rows]

    def list_modems(self) -> list[dict[str, Any]]:
        """Every modem seen, by IMEI."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM modems ORDER BY id")]

    def sim_by_number(self, msisdn: str) -> dict[str, Any] | None:
        """The SIM whose long code is `msisdn`."""
        row = self.conn.execute("SELECT * FROM sims WHERE msisdn = ?", (msisdn,)).fetchone()
        return dict(row) if row is not None else None

    def set_sim_number(self, sim_id: int, msisdn: str) -> bool:
        """Set the long code of a SIM (when the SIM cannot tell its own)."""
        with self.transaction():
            cursor = self.conn.execute("UPDATE sims SET msisdn = ? WHERE id = ?", (msisdn, sim_id))
        return cursor.rowcount == 1

    def set_sim_limits(self, sim_id: int, limits: Mapping[str, float | int | None]) -> bool:
        """Change a SIM's throttle interval and caps (columns of the sims table; None: no cap)."""
        if not limits or not set(limits) <= SIM_LIMIT_COLUMNS:
            raise ValueError(f"limits must be among {sorted(SIM_LIMIT_COLUMNS)}")
        assignments = ", ".join(f"{column} = ?" for column in limits)
        with self.transaction():
            cursor = self.conn.execute(
                f"UPDATE sims SET {assignments} WHERE id = ?", (*limits.values(), sim_id)
            )
        return cursor.rowcount == 1

    def record_radio(
        self,
        sim_id: int,
        *,
        signal_dbm: int | None,
        registration: str,
        operator: str,
        now: datetime,
    ) -> None:
        """Keep a SIM's latest signal, registration and operator (read by `smsgw top`)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE sims SET signal_dbm = ?, registration = ?, operator = ?, radio_at = ?"
                " WHERE id = ?",
                (signal_dbm, registration, operator, utc_iso(now), sim_id),
            )

    def recent_sends(self, sim_id: int, since: datetime) -> list[tuple[datetime, str]]:
        """When this SIM started each AT+CMGS since `since`, and to whom (to rebuild its pacing,
        caps and distinct recipients per day)."""
        rows = self.conn.execute(
            "SELECT p.sending_at, m.recipient FROM parts p JOIN messages m ON m.id = p.message_id"
            " WHERE p.sim_id = ? AND p.sending_at >= ? ORDER BY p.sending_at",
            (sim_id, utc_iso(since)),
        ).fetchall()
        return [(datetime.fromisoformat(r[0]), str(r[1])) for r in rows]

    def last_sims_by_recipient(self, since: datetime) -> dict[tuple[int, str], int]:
        """(account, recipient) -> the SIM that last sent to them since `since` (sticky routes
        rebuilt at start, so a conversation keeps its number across restarts)."""
        rows = self.conn.execute(
            "SELECT m.account_id, m.recipient, p.sim_id FROM parts p"
            " JOIN messages m ON m.id = p.message_id"
            " WHERE p.sim_id IS NOT NULL AND p.sending_at >= ? ORDER BY p.sending_at",
            (utc_iso(since),),
        ).fetchall()
        return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}  # later sends win

    def sim_by_iccid(self, iccid: str) -> dict[str, Any] | None:
        """The SIM with this ICCID."""
        row = self.conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone()
        return dict(row) if row is not None else None

    def grant_sim(self, account_id: int, sim_id: int) -> None:
        """Let an account send from (and receive on) a SIM."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO account_sims (account_id, sim_id) VALUES (?, ?)",
                (account_id, sim_id),
            )

    def revoke_sim(self, account_id: int, sim_id: int) -> bool:
        """Take a SIM away from an account; False if it was not granted."""
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM account_sims WHERE account_id = ? AND sim_id = ?",
                (account_id, sim_id),
            )
        return cursor.rowcount == 1

    def sims_of_account(self, account_id: int) -> list[int]:
        """SIMs granted to an account (empty: it may use every SIM)."""
        rows = self.conn.execute(
            "SELECT sim_id FROM account_sims WHERE account_id = ? ORDER BY sim_id", (account_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def granted_iccids(self) -> dict[int, list[str]]:
        """account id -> ICCIDs of the SIMs granted to it (accounts without grants absent)."""
        rows = self.conn.execute(
            "SELECT a.account_id, COALESCE(s.iccid, s.imsi, '') FROM account_sims a"
            " JOIN sims s ON s.id = a.sim_id ORDER BY a.account_id, s.id"
        ).fetchall()
        granted: dict[int, list[str]] = {}
        for account_id, iccid in rows:
            granted.setdefault(int(account_id), []).append(str(iccid))
        return granted

    def account_sim_numbers(self, account_id: int) -> list[dict[str, Any]]:
        """SIMs an account may send from (all SIMs when none is granted), with their numbers."""
        rows = self.conn.execute(
            "SELECT s.id, s.iccid, s.imsi, s.msisdn, s.state FROM sims s WHERE s.id IN"
            " (SELECT sim_id FROM account_sims WHERE account_id = ?)"
            " OR NOT EXISTS (SELECT 1 FROM account_sims WHERE account_id = ?) ORDER BY s.id",
            (account_id, account_id),
        ).fetchall()
        return [dict(r) for r in rows]
