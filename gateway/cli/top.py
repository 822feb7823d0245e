"""`smsgw top`: the dashboard's overview in the terminal (rich Live), for ssh users."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.cli.common import data_dir_option, now, open_store
from gateway.operator import HourCount, Overview
from gateway.service import GatewayService

SPARKS = " ▁▂▃▄▅▆▇█"


def sparkline(hours: tuple[HourCount, ...]) -> str:
    """Parts sent per hour as one line of block characters (oldest first)."""
    peak = max([1, *(h.sent for h in hours)])
    return "".join(SPARKS[min(round(h.sent / peak * 8), 8)] if h.sent else "·" for h in hours)


def _state_style(state: str) -> str:
    return "green" if state in ("ready", "present") else "red"


def render(overview: Overview) -> RenderableType:
    """One frame: totals, the 24 h sparkline, modems and SIMs."""
    o = overview
    queue = ", ".join(f"{n} {state}" for state, n in o.queue.items() if n) or "empty"
    head = Text.assemble(
        ("smsgw ", "bold"),
        f"{o.generated_at.astimezone():%Y-%m-%d %H:%M:%S}   ",
        ("modems up ", "dim"),
        f"{o.modems_up}/{len(o.modems)}   ",
        ("queue ", "dim"),
        f"{o.queued} ({queue})   ",
        ("today ", "dim"),
        f"{o.sent_today} sent, {o.failed_today} failed, {o.received_today} received",
    )
    spark = Text.assemble(("24 h sent ", "dim"), sparkline(o.throughput), (" now", "dim"))
    modems = Table(title="Modems", expand=True, title_justify="left")
    for column in ("port", "model", "IMEI", "state"):
        modems.add_column(column)
    for m in o.modems:
        modems.add_row(
            m.port,
            f"{m.manufacturer} {m.model}".strip(),
            m.imei,
            Text(m.state, style="green" if m.up else "red"),
        )
    sims = Table(title="SIMs", expand=True, title_justify="left")
    for column in ("SIM", "number", "operator", "signal", "state", "every", "sent", "fail", "recv"):
        sims.add_column(column, justify="right" if column in ("sent", "fail", "recv") else "left")
    for s in o.sims:
        signal = f"{s.signal_dbm} dBm" if s.signal_dbm is not None else "—"
        wait = f" (next in {s.throttle_wait:.0f} s)" if s.throttle_wait >= 1 else ""
        sims.add_row(
            f"#{s.sim_id}",
            s.msisdn or "—",
            s.operator or "—",
            signal,
            Text(s.state, style=_state_style(s.state)),
            f"{s.throttle_interval:g} s{wait}",
            str(s.sent),
            str(s.failed),
            str(s.received),
        )
    return Group(head, spark, modems, sims)


@click.command("top")
@data_dir_option
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit (so does a pipe).")
def top_command(data_dir: Path, interval: float, once: bool) -> None:
    """Modems, SIMs, queue and today's traffic, refreshed in place (Ctrl-C quits)."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        console = Console()
        if once or not console.is_terminal:
            # A pipe or a log has no width to fit: do not cut numbers short.
            Console(width=max(console.width, 132)).print(render(service.overview()))
            return
        with Live(render(service.overview()), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)  # a terminal refresh, not a wait for an event
                    live.update(render(service.overview()), refresh=True)
            except KeyboardInterrupt:
                pass
