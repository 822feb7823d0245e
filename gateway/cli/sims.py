"""`smsgw sims|modems`: the long codes and the modems the box has seen."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.common import data_dir_option, json_option, now, open_store, show
from gateway.daemon import HOUSEKEEPING_SECONDS
from gateway.service import GatewayService, ServiceError

RELOAD = int(HOUSEKEEPING_SECONDS)


@click.group("sims")
def sims_group() -> None:
    """SIMs (long codes), bound by ICCID."""


@sims_group.command("list")
@data_dir_option
@json_option
def sims_list(data_dir: Path, as_json: bool) -> None:
    """Every SIM the gateway has seen, with counters and limits; `box`: the fleet box holding
    its lease (empty on SQLite or when no box holds it), as /v1/sims says."""
    with open_store(data_dir) as store:
        rows = GatewayService(store, wall=now).sims()
    columns = ["id", "iccid", "imsi", "msisdn", "state", "box", "throttle_interval",
               "sent_count", "failed_count", "received_count", "last_port"]  # fmt: skip
    show(rows, columns, as_json, "SIMs")


def _sim_id(service: GatewayService, iccid: str) -> int:
    row = service.sim_by_iccid(iccid)
    if row is None:
        raise click.ClickException(f"no SIM with ICCID {iccid}")
    return int(row["id"])


@sims_group.command("set-number")
@data_dir_option
@click.argument("iccid")
@click.argument("number")
def sims_set_number(data_dir: Path, iccid: str, number: str) -> None:
    """Set the phone number of a SIM that does not know its own (+CNUM empty)."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        try:
            service.set_sim_number(_sim_id(service, iccid), number)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"SIM {iccid}: number set; a running daemon uses it within {RELOAD} s")


@sims_group.command("set-limits")
@data_dir_option
@click.argument("iccid")
@click.option("--interval", type=click.FloatRange(1, 60), help="Seconds between SMS.")
@click.option("--per-minute", type=click.IntRange(1), default=None)
@click.option("--per-hour", type=click.IntRange(1), default=None)
@click.option("--per-day", type=click.IntRange(1), default=None)
@click.option("--recipients-per-day", type=click.IntRange(1), default=None)
def sims_set_limits(  # noqa: PLR0917 - one parameter per click option
    data_dir: Path,
    iccid: str,
    interval: float | None,
    per_minute: int | None,
    per_hour: int | None,
    per_day: int | None,
    recipients_per_day: int | None,
) -> None:
    """Slow a SIM down or cap it (operators block SIMs that send too fast)."""
    limits = {
        "throttle_interval": interval,
        "cap_per_minute": per_minute,
        "cap_per_hour": per_hour,
        "cap_per_day": per_day,
        "cap_recipients_per_day": recipients_per_day,
    }
    chosen = {k: v for k, v in limits.items() if v is not None}
    if not chosen:
        raise click.UsageError("give at least one limit")
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        try:
            service.set_sim_limits(_sim_id(service, iccid), chosen)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"iccid": iccid, **chosen}))


@click.command("modems")
@data_dir_option
@json_option
def modems_command(data_dir: Path, as_json: bool) -> None:
    """Every modem seen, by IMEI, with its last port."""
    with open_store(data_dir) as store:
        rows = store.list_modems()
    show(rows, ["id", "imei", "manufacturer", "model", "last_port", "state", "last_seen"],
          as_json, "modems")  # fmt: skip
