"""The operator's view of the box, as frozen dataclasses: SIMs, modems, queue and throughput.

Built from the store's rows and, inside the daemon, the live pool and workers; the dashboard,
/metrics and `smsgw top` all show this one view (through GatewayService.overview()).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.models import ModemState
from gateway.pool import SimAvailability, SimPool

# States of a message that has not reached a verdict yet: what "the queue" holds.
QUEUE_STATES = ("accepted", "queued", "sending", "uncertain")
HOURS = 24


@dataclass(frozen=True, slots=True)
class LiveModem:
    """What a running modem worker knows that the store does not (the daemon supplies it);
    GET /v1/health shows one per expected port."""

    port: str
    state: ModemState
    last_error: str = ""  # why the last attempt failed, while it has not come back
    modem_id: int | None = None
    sim_id: int | None = None
    registration: str | None = None  # "home", "roaming", "searching", "denied"...; None: unread
    iccid: str | None = None
    number: str | None = None  # the SIM's own number (E.164) when known
    signal_dbm: int | None = None
    model: str | None = None

    @property
    def ready(self) -> bool:
        """Registered on a network with its SIM in the pool."""
        return self.state == ModemState.READY


@dataclass(frozen=True, slots=True)
class ModemStatus:
    """One modem: by IMEI when it ever answered, else only its port."""

    modem_id: int | None
    imei: str
    manufacturer: str
    model: str
    port: str
    state: str
    up: bool
    last_error: str
    sim_id: int | None
    last_seen: str | None


@dataclass(frozen=True, slots=True)
class SimStatus:
    """One SIM: identity, limits, counters and (in the daemon) its live radio and throttle."""

    sim_id: int
    iccid: str
    msisdn: str
    label: str
    state: str  # a SimAvailability value when live, else the stored present/gone
    live: bool  # the daemon's pool knows it (its modem was bound since the daemon started)
    signal_dbm: int | None
    registration: str
    operator: str
    throttle_interval: float
    cap_per_minute: int | None
    cap_per_hour: int | None
    cap_per_day: int | None
    cap_recipients_per_day: int | None
    sent: int
    failed: int
    received: int
    cms_errors: int
    throttle_wait: float  # seconds until its throttle lets the next SMS go
    cooldown_remaining: float  # seconds until a cool-down after send errors ends
    cooldowns: int  # cool-downs since the daemon started
    modem_port: str
    modem_model: str
    modem_state: str
    box: str = ""  # fleet mode: the box holding its live lease ("": none, or one box only)

    @property
    def csq(self) -> int | None:
        """The signal as +CSQ reported it (0-31)."""
        return None if self.signal_dbm is None else (self.signal_dbm + 113) // 2


@dataclass(frozen=True, slots=True)
class HourCount:
    """Traffic in one hour of the chart."""

    start: datetime
    sent: int
    failed: int
    received: int


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the dashboard's first page and `smsgw top` show."""

    generated_at: datetime
    modems: tuple[ModemStatus, ...]
    sims: tuple[SimStatus, ...]
    queue: Mapping[str, int]
    sent_today: int
    failed_today: int
    received_today: int
    throughput: tuple[HourCount, ...]

    @property
    def modems_up(self) -> int:
        """Modems answering right now."""
        return sum(1 for m in self.modems if m.up)

    @property
    def queued(self) -> int:
        """Messages without a verdict yet."""
        return sum(self.queue.values())


def sim_statuses(
    rows: Iterable[Mapping[str, Any]],
    pool: SimPool | None,
    now: float,
    *,
    leases: Mapping[int, str] | None = None,
) -> tuple[SimStatus, ...]:
    """SIM rows (with their modem columns) merged with the live pool at monotonic `now`.

    Fleet mode: `leases` maps each SIM leased right now to the box that holds it. A SIM
    another box holds is `present` there (its radio and throttle live on that box), not gone."""
    known = set(pool.sim_ids()) if pool is not None else set()
    leases = leases or {}
    out = []
    for row in rows:
        sim_id = int(row["id"])
        state = str(row["state"])
        signal = row.get("signal_dbm")
        registration = str(row.get("registration") or "")
        operator = str(row.get("operator") or "")
        limits = {
            "throttle_interval": float(row["throttle_interval"] or 1.0),
            "cap_per_minute": row["cap_per_minute"],
            "cap_per_hour": row["cap_per_hour"],
            "cap_per_day": row["cap_per_day"],
            "cap_recipients_per_day": row["cap_recipients_per_day"],
        }
        wait = cooldown = 0.0
        cooldowns = 0
        live = pool is not None and sim_id in known
        if pool is not None and live:
            pooled = pool.get(sim_id)
            state = pool.availability(sim_id, now).value
            signal, registration = pooled.signal_dbm, pooled.registration or registration
            operator = pooled.operator or operator
            policy = pooled.throttle.policy
            limits = {
                "throttle_interval": policy.interval,
                "cap_per_minute": policy.per_minute,
                "cap_per_hour": policy.per_hour,
                "cap_per_day": policy.per_day,
                "cap_recipients_per_day": policy.recipients_per_day,
            }
            wait = max(pooled.throttle.check(now).not_before - now, 0.0)
            cooldown = max(pooled.cooldown_until - now, 0.0)
            cooldowns = pooled.cooldowns
        elif sim_id in leases:
            state = "present"  # sending from another box (or this one's previous process)
        elif pool is not None and state == "present":
            state = SimAvailability.GONE.value  # in the store as present, but no worker has it
        out.append(
            SimStatus(
                sim_id=sim_id,
                iccid=str(row["iccid"] or ""),
                msisdn=str(row["msisdn"] or ""),
                label=str(row["label"] or ""),
                state=state,
                live=live,
                signal_dbm=signal,
                registration=registration,
                operator=operator,
                throttle_interval=float(limits["throttle_interval"] or 1.0),
                cap_per_minute=limits["cap_per_minute"],
                cap_per_hour=limits["cap_per_hour"],
                cap_per_day=limits["cap_per_day"],
                cap_recipients_per_day=limits["cap_recipients_per_day"],
                sent=int(row["sent_count"]),
                failed=int(row["failed_count"]),
                received=int(row["received_count"]),
                cms_errors=int(row["cms_errors"]),
                throttle_wait=wait,
                cooldown_remaining=cooldown,
                cooldowns=cooldowns,
                modem_port=str(row.get("last_port") or ""),
                modem_model=str(row.get("model") or ""),
                modem_state=str(row.get("modem_state") or ""),
                box=leases.get(sim_id, ""),
            )
        )
    return tuple(out)


def modem_statuses(
    rows: Iterable[Mapping[str, Any]], live: Sequence[LiveModem] | None
) -> tuple[ModemStatus, ...]:
    """Modem rows merged with the running workers (None: no daemon here, the store decides)."""
    by_modem = {w.modem_id: w for w in live or () if w.modem_id is not None}
    sims = {w.modem_id: w.sim_id for w in live or () if w.modem_id is not None}
    out = []
    for row in rows:
        worker = by_modem.get(int(row["id"]))
        if live is not None and worker is None:
            state, error, port = "gone", "", str(row["last_port"])
        elif worker is not None:
            state, error, port = worker.state, worker.last_error, worker.port
        else:
            state, error, port = str(row["state"]), "", str(row["last_port"])
        out.append(
            ModemStatus(
                modem_id=int(row["id"]),
                imei=str(row["imei"]),
                manufacturer=str(row["manufacturer"]),
                model=str(row["model"]),
                port=port,
                state=state,
                up=state == "ready",
                last_error=error,
                sim_id=sims.get(int(row["id"])),
                last_seen=row["last_seen"],
            )
        )
    for worker in live or ():
        if worker.modem_id is None:  # never got as far as its IMEI (no SIM, wrong PIN, ...)
            out.append(
                ModemStatus(
                    modem_id=None,
                    imei="",
                    manufacturer="",
                    model="",
                    port=worker.port,
                    state=worker.state,
                    up=False,
                    last_error=worker.last_error,
                    sim_id=None,
                    last_seen=None,
                )
            )
    return tuple(out)


def hour_floor(moment: datetime) -> datetime:
    """The start of the hour `moment` is in."""
    return moment.replace(minute=0, second=0, microsecond=0)


def throughput(hourly: Mapping[str, tuple[int, int, int]], now: datetime) -> tuple[HourCount, ...]:
    """The last HOURS hours (UTC buckets, the current one last), zeros included."""
    first = hour_floor(now) - timedelta(hours=HOURS - 1)
    out = []
    for i in range(HOURS):
        start = first + timedelta(hours=i)
        sent, failed, received = hourly.get(start.strftime("%Y-%m-%dT%H"), (0, 0, 0))
        out.append(HourCount(start, sent, failed, received))
    return tuple(out)
