"""Versioned schema migrations, applied in order and recorded in PRAGMA user_version (SQLite)
or the smsgw_schema table (PostgreSQL, applied once across a fleet under an advisory lock)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from gateway.store.dialect import CREATE_TABLE, pg_ddl, pg_order
from gateway.store.postgres import MIGRATION_LOCK, PgConnection

# Each entry is one schema version; never edit a released one, append a new one.
# Times are UTC ISO-8601 strings (sortable); counters are integers; JSON in TEXT columns.
MIGRATIONS: Sequence[str] = (
    # 1: initial schema. Nothing is keyed by a port path: SIMs by ICCID, modems by IMEI.
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        sub_account TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        api_key TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL DEFAULT '',
        token TEXT NOT NULL UNIQUE,
        default_dial_code TEXT NOT NULL DEFAULT '',
        default_sender TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT 'UTC',
        credits INTEGER NOT NULL DEFAULT 0,
        unlimited INTEGER NOT NULL DEFAULT 0,
        api_enabled INTEGER NOT NULL DEFAULT 1,
        resend_uncertain INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE modems (
        id INTEGER PRIMARY KEY,
        imei TEXT NOT NULL UNIQUE,
        manufacturer TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        revision TEXT NOT NULL DEFAULT '',
        last_port TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'gone',
        last_seen TEXT
    );
    CREATE TABLE sims (
        id INTEGER PRIMARY KEY,
        iccid TEXT UNIQUE,
        imsi TEXT,
        msisdn TEXT NOT NULL DEFAULT '',
        label TEXT NOT NULL DEFAULT '',
        modem_id INTEGER REFERENCES modems(id),
        state TEXT NOT NULL DEFAULT 'gone',
        throttle_interval REAL NOT NULL DEFAULT 1.0,
        cap_per_minute INTEGER,
        cap_per_hour INTEGER,
        cap_per_day INTEGER,
        cap_recipients_per_day INTEGER,
        sent_count INTEGER NOT NULL DEFAULT 0,
        failed_count INTEGER NOT NULL DEFAULT 0,
        received_count INTEGER NOT NULL DEFAULT 0,
        cms_errors INTEGER NOT NULL DEFAULT 0,
        last_seen TEXT,
        created_at TEXT NOT NULL,
        CHECK (iccid IS NOT NULL OR imsi IS NOT NULL)
    );
    CREATE UNIQUE INDEX sims_imsi_without_iccid ON sims(imsi) WHERE iccid IS NULL;
    CREATE UNIQUE INDEX sims_msisdn ON sims(msisdn) WHERE msisdn != '';
    CREATE TABLE account_sims (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        sim_id INTEGER NOT NULL REFERENCES sims(id) ON DELETE CASCADE,
        PRIMARY KEY (account_id, sim_id)
    );
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        state TEXT NOT NULL DEFAULT 'active',
        sender TEXT NOT NULL DEFAULT '',
        rotate INTEGER NOT NULL DEFAULT 0,
        throttle_interval REAL,
        send_at TEXT,
        recurrence TEXT,
        extra TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        batch_id INTEGER REFERENCES batches(id),
        sender TEXT NOT NULL DEFAULT '',
        sim_id INTEGER REFERENCES sims(id),
        recipient TEXT NOT NULL,
        body TEXT NOT NULL,
        encoding TEXT NOT NULL,
        flash INTEGER NOT NULL DEFAULT 0,
        status_report INTEGER NOT NULL DEFAULT 1,
        units INTEGER NOT NULL,
        state TEXT NOT NULL,
        send_at TEXT,
        error TEXT NOT NULL DEFAULT '',
        extra TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX messages_account_state ON messages(account_id, state);
    CREATE INDEX messages_batch ON messages(batch_id);
    CREATE INDEX messages_due ON messages(state, send_at);
    CREATE TABLE parts (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        sim_id INTEGER REFERENCES sims(id),
        tp_mr INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        error TEXT NOT NULL DEFAULT '',
        cms_error INTEGER,
        sending_at TEXT,
        sent_at TEXT,
        done_at TEXT,
        report_status INTEGER,
        UNIQUE (message_id, seq)
    );
    CREATE INDEX parts_state ON parts(state);
    CREATE INDEX parts_report_match ON parts(sim_id, tp_mr, sent_at);
    CREATE TABLE inbound_parts (
        id INTEGER PRIMARY KEY,
        sim_id INTEGER REFERENCES sims(id),
        originator TEXT NOT NULL,
        reference INTEGER,
        total INTEGER NOT NULL DEFAULT 1,
        seq INTEGER NOT NULL DEFAULT 1,
        pdu TEXT NOT NULL,
        received_at TEXT NOT NULL,
        message_id INTEGER REFERENCES inbound(id)
    );
    CREATE UNIQUE INDEX inbound_parts_dedup
        ON inbound_parts(sim_id, originator, reference, total, seq, pdu);
    CREATE TABLE inbound (
        id INTEGER PRIMARY KEY,
        account_id INTEGER REFERENCES accounts(id),
        sim_id INTEGER REFERENCES sims(id),
        originator TEXT NOT NULL,
        recipient TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL,
        encoding TEXT NOT NULL,
        parts_received INTEGER NOT NULL,
        parts_total INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        scts TEXT,
        received_at TEXT NOT NULL,
        is_read INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbound_account ON inbound(account_id, received_at);
    CREATE TABLE delivery_reports (
        id INTEGER PRIMARY KEY,
        sim_id INTEGER REFERENCES sims(id),
        tp_mr INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        status INTEGER NOT NULL,
        scts TEXT,
        discharge_time TEXT,
        part_id INTEGER REFERENCES parts(id),
        received_at TEXT NOT NULL
    );
    CREATE TABLE contact_groups (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        UNIQUE (account_id, name)
    );
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        group_id INTEGER REFERENCES contact_groups(id) ON DELETE SET NULL,
        number TEXT NOT NULL,
        first_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        extra TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE INDEX contacts_account_number ON contacts(account_id, number);
    CREATE TABLE opt_outs (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        number TEXT NOT NULL,
        keyword TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        PRIMARY KEY (account_id, number)
    );
    CREATE TABLE appointments (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
        number TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE otps (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        number TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        message_id INTEGER REFERENCES messages(id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX otps_lookup ON otps(account_id, number, state);
    CREATE TABLE credits_ledger (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        delta INTEGER NOT NULL,
        reason TEXT NOT NULL,
        message_id INTEGER REFERENCES messages(id),
        created_at TEXT NOT NULL
    );
    CREATE TABLE sticky_routes (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        sim_id INTEGER NOT NULL REFERENCES sims(id) ON DELETE CASCADE,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account_id, recipient)
    );
    """,
    # 2: recurring series and batch control: the template each occurrence is made from, the
    # series' local start (DST-correct occurrences) and the next run.
    """
    ALTER TABLE batches ADD COLUMN template TEXT;
    ALTER TABLE batches ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
    ALTER TABLE batches ADD COLUMN start_local TEXT;
    ALTER TABLE batches ADD COLUMN next_run TEXT;
    ALTER TABLE batches ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN error TEXT NOT NULL DEFAULT '';
    CREATE INDEX batches_next_run ON batches(state, next_run);
    """,
    # 3: provider dialects (BestSMS / UltraSMS / SMSit): appointment status, one appointment per
    # number and time, and the lookups their listings and reports filter on.
    """
    ALTER TABLE appointments ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX appointments_once ON appointments(account_id, number, starts_at);
    CREATE INDEX contacts_group ON contacts(group_id);
    CREATE INDEX messages_account_recipient ON messages(account_id, recipient);
    CREATE INDEX otps_account_state ON otps(account_id, state);
    """,
    # 4: indexes for the dispatcher's hot queries: "queued parts of this message" was a scan
    # of every queued part per message (quadratic: 280 ms per tick with 2,000 queued).
    """
    DROP INDEX parts_state;
    CREATE INDEX parts_state_message ON parts(state, message_id);
    CREATE INDEX messages_state_id ON messages(state, id);
    CREATE INDEX delivery_reports_unmatched ON delivery_reports(sim_id, tp_mr)
        WHERE part_id IS NULL;
    """,
    # 5: the operator's view (dashboard, /metrics, `smsgw top`): box-wide settings (the admin
    # password hash, the session key), each SIM's last radio poll (so a CLI sees it too), and
    # indexes that keep "sent today" and the 24 h chart to the last day's rows.
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE sims ADD COLUMN signal_dbm INTEGER;
    ALTER TABLE sims ADD COLUMN registration TEXT NOT NULL DEFAULT '';
    ALTER TABLE sims ADD COLUMN operator TEXT NOT NULL DEFAULT '';
    ALTER TABLE sims ADD COLUMN radio_at TEXT;
    CREATE INDEX parts_sent_at ON parts(sent_at) WHERE sent_at IS NOT NULL;
    CREATE INDEX parts_done_at ON parts(done_at, state) WHERE done_at IS NOT NULL;
    CREATE INDEX inbound_received_at ON inbound(received_at);
    """,
    # 6: what a leniently decoded inbound PDU had wrong (modem.pdu.Anomaly as a JSON list of
    # {code, octet, detail}), per part and, with each part's seq, per message.
    """
    ALTER TABLE inbound_parts ADD COLUMN anomalies TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE inbound ADD COLUMN anomalies TEXT NOT NULL DEFAULT '[]';
    """,
    # 7: outgoing webhooks. One subscription per (account, kind) with its format, one signing
    # secret per account, and the durable outbox: a row per event, written in the transaction of
    # the change it reports. `order_key` groups events whose order matters (one message, one
    # conversation); `window_start` is when retrying began (a manual retry restarts it).
    """
    CREATE TABLE webhook_subscriptions (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        host TEXT NOT NULL,
        format TEXT NOT NULL DEFAULT 'v1',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account_id, kind)
    );
    CREATE TABLE webhook_secrets (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        secret TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE webhook_events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        order_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        window_start TEXT NOT NULL,
        last_status INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        last_attempt_at TEXT,
        delivered_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX webhook_events_due ON webhook_events(account_id, kind, next_attempt_at)
        WHERE state = 'pending';
    CREATE INDEX webhook_events_next ON webhook_events(next_attempt_at) WHERE state = 'pending';
    CREATE INDEX webhook_events_order ON webhook_events(order_key, id) WHERE state = 'pending';
    CREATE INDEX webhook_events_state ON webhook_events(state, updated_at);
    CREATE INDEX webhook_events_account ON webhook_events(account_id, id);
    """,
    # 8: teams, templates, read/deleted flags and group memberships (the Zoom Connect dialect,
    # but every one of them dialect-neutral). A sub-account belongs to the account that made it
    # (parent_id); a URL-sending token (its digest) may only send; a contact may sit in more
    # groups than its own (contacts.group_id stays its first); a batch may be paced as a whole.
    """
    ALTER TABLE accounts ADD COLUMN parent_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL;
    ALTER TABLE accounts ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN contact_number TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN company TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN send_token TEXT;
    CREATE UNIQUE INDEX accounts_send_token ON accounts(send_token) WHERE send_token IS NOT NULL;
    CREATE INDEX accounts_email ON accounts(email COLLATE NOCASE);
    CREATE INDEX accounts_parent ON accounts(parent_id);
    ALTER TABLE messages ADD COLUMN is_read INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE inbound ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN batch_gap REAL;
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX templates_account ON templates(account_id, id);
    CREATE TABLE contact_group_members (
        group_id INTEGER NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
        contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, contact_id)
    );
    CREATE INDEX contact_group_members_contact ON contact_group_members(contact_id);
    """,
    # 9: account policies the provider dialects report and enforce (SMS Everyone's
    # RetrieveUserSettings: unicode, longer-than-one-SMS texts, international destinations;
    # its credits API: top-ups only for approved accounts), where each API reader of an
    # account's replies got to ("since the last check"), and campaign lookups by account.
    """
    ALTER TABLE accounts ADD COLUMN allow_unicode INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN allow_long INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN allow_international INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN allow_topup INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE read_markers (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        reader TEXT NOT NULL,
        inbound_id INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account_id, reader)
    );
    CREATE INDEX batches_account_state ON batches(account_id, state);
    CREATE INDEX inbound_account_id ON inbound(account_id, id);
    """,
    # 10: fleet mode (several boxes on one PostgreSQL). A SIM is leased to one daemon at a time
    # (its box and a token of that process, `incarnation`) until expires_at, renewed by it; a
    # queued message is claimed for one SIM by the daemon holding that SIM's lease (claim_sim,
    # claim_owner = that incarnation), and a claim whose owner no longer holds the lease is
    # stale; a batch sent without rotation records the SIM it keeps to (pin_sim).
    """
    CREATE TABLE sim_leases (
        sim_id INTEGER NOT NULL REFERENCES sims(id) ON DELETE CASCADE,
        box_id TEXT NOT NULL,
        incarnation TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        renewed_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (sim_id)
    );
    ALTER TABLE messages ADD COLUMN claim_sim INTEGER;
    ALTER TABLE messages ADD COLUMN claim_owner TEXT;
    ALTER TABLE batches ADD COLUMN pin_sim INTEGER;
    """,
    # 11: a webhook delivery attempt is claimed by one daemon (its box, a token of that
    # process) until claim_until, so two boxes never deliver one event at once, and a dead
    # box's attempts are taken up by another once their claim has run out.
    """
    ALTER TABLE webhook_events ADD COLUMN claim_box TEXT;
    ALTER TABLE webhook_events ADD COLUMN claim_owner TEXT;
    ALTER TABLE webhook_events ADD COLUMN claim_until TEXT;
    CREATE INDEX webhook_events_claimed ON webhook_events(claim_until)
        WHERE state = 'pending' AND claim_until IS NOT NULL;
    """,
    # 12: fleet mode: a box_id is taken by one daemon process at a time (its incarnation),
    # which renews heartbeat_at with its leases, so a second live daemon with the same box_id
    # is refused at start instead of taking the first one's leases as its own past life's.
    # host (the kernel's boot id and PID namespace) and pid tell a restart on the same machine
    # that the previous process is gone; left_at is set by a clean stop.
    """
    CREATE TABLE fleet_boxes (
        box_id TEXT NOT NULL,
        incarnation TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        left_at TEXT,
        PRIMARY KEY (box_id)
    );
    """,
    # 13: an account's outbound messages in mailbox order (store/mailbox.py: its send time,
    # else its creation, the expression exactly as the mailbox writes it), so a page of the
    # mailbox is read in order and stops at its last row instead of sorting the account.
    """
    CREATE INDEX messages_account_at
        ON messages(account_id, CAST(COALESCE(send_at, created_at) AS TEXT));
    """,
)


# PostgreSQL DDL of a migration whose SQLite DDL `pg_ddl` does not translate (by version).
PG_MIGRATIONS: Mapping[int, str] = {}

_PG_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS smsgw_schema (version BIGINT NOT NULL)"


def current_version(conn: sqlite3.Connection | PgConnection) -> int:
    """Return the schema version recorded in the database."""
    if isinstance(conn, PgConnection):
        if conn.raw.execute("SELECT to_regclass('smsgw_schema')").fetchone()[0] is None:  # type: ignore[index]
            return 0
        row = conn.raw.execute("SELECT MAX(version) FROM smsgw_schema").fetchone()
        return int(row[0] or 0) if row is not None else 0
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def table_order(migrations: Sequence[str] = MIGRATIONS) -> list[str]:
    """Every table the migrations create, each after the tables it references."""
    statements = [s for script in migrations for s in _statements(script)]
    return [m.group(1).lower() for s in pg_order(statements) if (m := CREATE_TABLE.match(s))]


def pg_statements(number: int, script: str) -> list[str]:
    """The PostgreSQL statements of migration `number` (1-based) whose SQLite DDL is `script`."""
    if number in PG_MIGRATIONS:
        return _statements(PG_MIGRATIONS[number])
    return [pg_ddl(statement) for statement in pg_order(_statements(script))]


def migrate_pg(conn: PgConnection, migrations: Sequence[str] = MIGRATIONS) -> list[int]:
    """Apply every pending migration to a PostgreSQL database, each in its own transaction,
    holding an advisory lock so that boxes starting together apply each one once.

    Without the session's lock and statement timeouts: a box waits for another's migration,
    and a long one (an index on a large table) is not cut off."""
    conn.raw.execute("SET lock_timeout = 0; SET statement_timeout = 0")
    conn.raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.raw.execute(_PG_VERSION_TABLE)
        version = current_version(conn)
        if version > len(migrations):
            raise RuntimeError(
                f"database schema version {version} is newer than this smsgw ({len(migrations)})"
            )
        applied: list[int] = []
        for number, script in enumerate(migrations[version:], start=version + 1):
            with conn.raw.transaction():
                for statement in pg_statements(number, script):
                    conn.raw.execute(statement.encode())
                conn.raw.execute("DELETE FROM smsgw_schema")
                conn.raw.execute("INSERT INTO smsgw_schema (version) VALUES (%s)", (number,))
            applied.append(number)
        return applied
    finally:
        conn.raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        conn.apply_timeouts()
        conn.refresh_schema()


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> list[int]:
    """Apply every pending migration, each in its own transaction; return the versions applied."""
    version = current_version(conn)
    if version > len(migrations):
        raise RuntimeError(
            f"database schema version {version} is newer than this smsgw ({len(migrations)})"
        )
    applied: list[int] = []
    for number, script in enumerate(migrations[version:], start=version + 1):
        # executescript would COMMIT implicitly; run statements inside one explicit transaction
        # so a crash mid-migration leaves the previous version intact.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(number)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:60]!r}")
    return statements
