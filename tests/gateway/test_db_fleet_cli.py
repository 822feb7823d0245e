"""`smsgw db migrate` on PostgreSQL, `smsgw db copy` moving a box's SQLite file into it, and a
fleet box's settings and start-up (box_id, lease_ttl; recovery scoped to SIMs no box holds)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.store import Store, StoreOpenError
from gateway.store.migrations import MIGRATIONS
from tests.postgres import Cluster

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_db_migrate_brings_an_empty_postgresql_database_up_to_date(postgres: Cluster) -> None:
    url = postgres.create_database(migrated=False)
    try:
        result = CliRunner().invoke(main, ["db", "migrate", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert result.output == f"schema version {len(MIGRATIONS)} of {len(MIGRATIONS)}\n"
        again = CliRunner().invoke(main, ["db", "migrate"], env={"SMSGW_DATABASE_URL": url})
        assert again.output == result.output  # applied once: nothing the second time
    finally:
        postgres.drop_database(url)


def test_db_copy_moves_every_row_and_the_fleet_continues_the_ids(
    tmp_path: Path, pg_url: str
) -> None:
    box = Store.open(tmp_path)
    account = create_account(box, "shop", now=NOW, credits=10).account_id
    sim = box.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+447700900001", now=NOW)
    sent = box.accept_message(
        account_id=account, recipient="+15005550000", body="hello", encoding="gsm7", parts=2,
        charge=2, now=NOW,
    )  # fmt: skip
    box.close()
    source = f"sqlite://{tmp_path / 'smsgw.sqlite3'}"
    result = CliRunner().invoke(main, ["db", "copy", source, pg_url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("copied ")
    fleet = Store.open(pg_url)
    try:
        assert fleet.account(account)["credits"] == 8  # type: ignore[index]
        assert fleet.sim(sim)["msisdn"] == "+447700900001"  # type: ignore[index]
        assert [p["state"] for p in fleet.parts(sent.message_id)] == ["queued", "queued"]
        assert fleet.message(sent.message_id)["body"] == "hello"  # type: ignore[index]
        # ids were kept, and the identity sequences moved past them
        more = fleet.accept_message(
            account_id=account, recipient="+1", body="x", encoding="gsm7", parts=1, now=NOW
        )
        assert more.message_id == sent.message_id + 1
        assert more.part_ids[0] == sent.part_ids[-1] + 1
    finally:
        fleet.close()
    # a second copy into the now used database is refused, not doubled
    twice = CliRunner().invoke(main, ["db", "copy", source, pg_url])
    assert twice.exit_code != 0
    assert "already holds rows" in twice.output


def test_db_copy_refuses_what_is_not_a_database_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "copy", str(tmp_path), "mysql://x"])
    assert result.exit_code != 0
    assert "sqlite:///path or postgresql://" in result.output
    missing = CliRunner().invoke(
        main, ["db", "copy", f"sqlite://{tmp_path}/none.db", "sqlite:///x"]
    )
    assert "no database at" in missing.output


def test_database_url_in_smsgw_toml_puts_the_daemons_store_in_postgresql(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from gateway.config import ConfigError, load
    from gateway.daemon import Gateway

    toml = tmp_path / "smsgw.toml"
    toml.write_text(f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{pg_url}"\n')
    config = load(toml)
    assert config.database_url == pg_url

    async def build() -> str:
        gateway = Gateway.build(config)
        try:
            return gateway.store.dialect
        finally:
            gateway.store.close()

    assert asyncio.run(build()) == "postgresql"
    assert not (tmp_path / "data").exists()  # no SQLite file made on the side
    monkeypatch.setenv("SMSGW_DATABASE_URL", "mysql://nope")  # the environment wins, checked
    with pytest.raises(ConfigError, match="database_url must start with"):
        load(toml)


def test_commands_on_a_fleet_box_use_the_database_url_of_its_smsgw_toml(
    tmp_path: Path, pg_url: str
) -> None:
    """README's fleet set-up names PostgreSQL in smsgw.toml only: `accounts create` and the
    other commands must reach it as the daemon does, not make an empty SQLite file aside."""
    data = tmp_path / "data"
    data.mkdir()
    toml = tmp_path / "smsgw.toml"
    toml.write_text(f'database_url = "{pg_url}"\n')
    env = {"SMSGW_CONFIG": str(toml)}
    made = CliRunner().invoke(
        main, ["accounts", "create", "shop", "--data-dir", str(data)], env=env
    )
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(main, ["accounts", "list", "--data-dir", str(data)], env=env)
    assert "shop" in listed.output
    fleet = Store.open(pg_url)
    try:
        assert fleet.account_by_name("shop") is not None
    finally:
        fleet.close()
    assert list(data.iterdir()) == []  # no SQLite store made on the side
    backup = CliRunner().invoke(
        main, ["db", "backup", "--data-dir", str(data), str(tmp_path / "b.sqlite3")], env=env
    )
    assert backup.exit_code != 0
    assert "use pg_dump" in backup.output
    toml.write_text('database_url = "mysql://nope"\n')  # a broken config is named, not skipped
    broken = CliRunner().invoke(main, ["accounts", "list", "--data-dir", str(data)], env=env)
    assert broken.exit_code != 0
    assert "database_url must start with" in broken.output


def test_sims_list_on_a_fleet_box_names_the_box_holding_each_lease(
    tmp_path: Path, pg_url: str
) -> None:
    """As /v1/sims: `box` is the holder of a live lease, empty (and the SIM gone) otherwise."""
    import json

    from gateway.store import LeaseHolder

    now = datetime.now(UTC)
    store = Store.open(pg_url)
    try:
        held = store.bind_sim(iccid="8944000000000000011", imsi=None, now=now)
        store.bind_sim(iccid="8944000000000000012", imsi=None, now=now)
        store.acquire_lease(held, LeaseHolder("rack2-pi3", "i1"), ttl=600, now=now)
    finally:
        store.close()
    env = {"SMSGW_DATABASE_URL": pg_url}
    listed = CliRunner().invoke(main, ["sims", "list", "--json", "--data-dir", str(tmp_path)],
                                env=env)  # fmt: skip
    assert listed.exit_code == 0, listed.output
    rows = {r["iccid"]: (r["box"], r["state"]) for r in json.loads(listed.output)}
    assert rows == {"8944000000000000011": ("rack2-pi3", "present"),
                    "8944000000000000012": (None, "gone")}  # fmt: skip
    piped = CliRunner().invoke(main, ["sims", "list", "--data-dir", str(tmp_path)], env=env)
    header, *lines = (line.split("\t") for line in piped.output.splitlines())
    boxes = {row[header.index("iccid")]: row[header.index("box")] for row in lines}
    assert boxes == {"8944000000000000011": "rack2-pi3", "8944000000000000012": ""}


def test_box_id_and_lease_ttl_in_smsgw_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from gateway.config import ConfigError, load

    toml = tmp_path / "smsgw.toml"
    toml.write_text('box_id = "rack2-pi3"\nlease_ttl = 30\n')
    config = load(toml)
    assert (config.fleet_box_id(), config.lease_ttl) == ("rack2-pi3", 30.0)
    monkeypatch.setenv("SMSGW_BOX_ID", "from-env")
    assert load(toml).fleet_box_id() == "from-env"
    monkeypatch.delenv("SMSGW_BOX_ID")
    toml.write_text("")
    assert (load(toml).fleet_box_id(), load(toml).lease_ttl) == (socket.gethostname(), 15.0)
    for bad in ('box_id = "two words"', "lease_ttl = 1", "lease_ttl = 3600"):
        toml.write_text(bad + "\n")
        with pytest.raises(ConfigError):
            load(toml)


def test_a_box_starting_on_postgresql_leaves_the_other_boxes_parts_on_the_wire(
    tmp_path: Path, pg_url: str
) -> None:
    """SQLite's start-up recovery (every `sending` part uncertain) would wreck what the other
    live boxes have on the wire: on PostgreSQL only the parts of SIMs no box holds are."""
    import asyncio
    from datetime import UTC, datetime

    from gateway.accounts import create_account
    from gateway.config import Config
    from gateway.daemon import Gateway
    from gateway.models import PartState
    from gateway.store import LeaseHolder, Store

    now = datetime.now(UTC)
    store = Store.open(pg_url)
    account = create_account(store, "shop", now=now, unlimited=True).account_id
    live = store.bind_sim(iccid="8944000000000000001", imsi=None, now=now)
    dead = store.bind_sim(iccid="8944000000000000002", imsi=None, now=now)
    store.acquire_lease(live, LeaseHolder("box-a", "a1"), ttl=600, now=now)
    parts = []
    for sim in (live, dead):
        message = store.accept_message(account_id=account, recipient="+15550001", body="x",
                                       encoding="gsm7", parts=1, now=now)  # fmt: skip
        (part,) = message.part_ids
        store.transition_part(part, PartState.QUEUED, PartState.SENDING, now=now,
                              fields={"sim_id": sim})  # fmt: skip
        parts.append(part)

    async def start() -> None:
        config = Config(data_dir=tmp_path / "b", database_url=pg_url, box_id="box-b", discover=())
        Gateway.build(config).store.close()

    asyncio.run(start())
    states = [store.conn.execute("SELECT state FROM parts WHERE id = ?", (p,)).fetchone()[0]
              for p in parts]  # fmt: skip
    store.close()
    assert states == ["sending", "uncertain"]  # box A's in-flight part is left to box A


def test_a_database_that_is_not_utf8_is_refused_with_how_to_make_one(postgres: Cluster) -> None:
    # initdb under the C locale makes SQL_ASCII databases; psycopg then reads text as bytes and
    # every id lookup by table name failed (a fresh SIM was bound as SIM 0).
    postgres.admin.execute(
        "CREATE DATABASE ascii_db ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
        " TEMPLATE template0"
    )
    url = postgres.url("ascii_db")
    try:
        with pytest.raises(StoreOpenError, match="'SQL_ASCII'; smsgw needs UTF8: CREATE DATABASE"):
            Store.open(url)
        result = CliRunner().invoke(main, ["db", "migrate", "--database-url", url])
        assert result.exit_code == 1
        assert "Error: the database's encoding is 'SQL_ASCII'" in result.output
        assert "Traceback" not in result.output
    finally:
        postgres.drop_database(url)


def test_a_server_that_does_not_answer_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSGW_DATABASE_URL", f"postgresql://smsgw@/smsgw?host={tmp_path}")
    result = CliRunner().invoke(main, ["accounts", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot connect to PostgreSQL: ")
    assert "Is the server running" in result.output and "\n" not in result.output.strip()
