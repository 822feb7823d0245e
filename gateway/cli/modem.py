"""`smsgw modem ...`: diagnostics for one modem (device, PTY or socket://host:port), JSON out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from modem.at.parsers import Registration
from modem.client import (
    ClientConfig,
    ClientEvent,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    PartResult,
    SubmitStatus,
    Timeouts,
)
from modem.errors import ModemError
from modem.pdu import Reassembler

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """Dataclasses, enums, datetimes and bytes as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [to_json(v) for v in items]
    return value


def emit(obj: Any) -> None:
    """One JSON document (or JSON line) on stdout."""
    click.echo(json.dumps(to_json(obj), ensure_ascii=False, sort_keys=False))


def _config(pin: str | None, timeout: float) -> ClientConfig:
    return ClientConfig(
        pin=pin,
        scan_on_start=False,
        timeouts=Timeouts(command=timeout, keepalive=3600.0, scan_interval=3600.0),
    )


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ModemError as exc:
        emit({"error": type(exc).__name__, "message": str(exc)})
        sys.exit(2)


def _registration(reg: Registration) -> dict[str, Any]:
    return {
        "stat": reg.stat,
        "status": reg.status.name.lower() if reg.status is not None else None,
        "registered": reg.registered,
        "lac": reg.lac,
        "ci": reg.ci,
        "act": reg.technology.name if reg.technology is not None else reg.act,
    }


async def _step(out: dict[str, Any], key: str, fn: Callable[[], Awaitable[Any]]) -> None:
    try:
        out[key] = to_json(await fn())
    except ModemError as exc:
        out[key] = {"error": type(exc).__name__, "message": str(exc)}


def _inbound_json(item: Inbound) -> dict[str, Any]:
    if isinstance(item, InboundStatusReport):
        rep = item.report
        return {
            "type": "status_report",
            "message_reference": rep.message_reference,
            "recipient": str(rep.recipient),
            "status": rep.status,
            "delivery_status": to_json(rep.delivery_status),
            "scts": to_json(rep.scts),
            "discharge_time": to_json(rep.discharge_time),
            "storage": item.storage,
            "index": item.index,
        }
    sms = item.deliver
    return {
        "type": "sms_part",
        "originator": str(sms.originator),
        "scts": to_json(sms.scts),
        "text": sms.user_data.text,
        "storage": item.storage,
        "index": item.index,
    }


@click.group("modem")
def modem_group() -> None:
    """Diagnostics for one modem. PORT: /dev/ttyUSB2, a PTY path or socket://host:port."""


_port = click.argument("port")
_pin = click.option("--pin", default=None, help="SIM PIN, tried once (never retried).")
_timeout = click.option(
    "--timeout", default=10.0, show_default=True, help="Seconds to wait for each command."
)
_verbose = click.option("-v", "--verbose", is_flag=True, help="Log the driver's work to stderr.")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


@modem_group.command("probe")
@_port
@_pin
@_timeout
@_verbose
def probe(port: str, pin: str | None, timeout: float, verbose: bool) -> None:
    """Identity, signal, registration, operator, SMSC, storages, CNMI choice, quirk profile."""
    _logging(verbose)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"port": port}
        client = ModemClient(port, config=_config(pin, timeout))
        try:
            await client.open()
            initialised = True
        except ModemError as exc:
            out["init_error"] = {"error": type(exc).__name__, "message": str(exc)}
            client = ModemClient(port, config=_config(None, timeout))
            await client.open(initialise=False)
            initialised = False
        try:
            await _step(out, "identity", client.identity)
            await _step(out, "signal", client.signal)
            out["signal_dbm"] = None
            if isinstance(out["signal"], dict) and "rssi" in out["signal"]:
                out["signal_dbm"] = (await client.signal()).dbm

            async def registration() -> dict[str, Any]:
                await client.at("AT+CREG=2")  # ask for LAC/CI too (failure is fine)
                return _registration(await client.registration())

            await _step(out, "registration", registration)
            await _step(out, "operator", client.operator)
            await _step(out, "smsc", client.smsc)
            await _step(out, "storage_usage", client.storage_usage)
            out["profile"] = client.profile.name
            if initialised:
                out["storages_offered"] = to_json(client.storages)
                out["storages_selected"] = to_json(client.preferred)
                out["cnmi"] = to_json(client.cnmi)
                out["cnmi_mode"] = "indications" if client.cnmi is not None else "polling"
                out["cnmi_support"] = to_json(client.cnmi_support)
                out["ack_required"] = client.ack_required
        finally:
            await client.close()
        return out

    emit(_run(main()))


@modem_group.command("send")
@_port
@click.argument("number")
@click.argument("text")
@click.option("--status-report/--no-status-report", default=True, show_default=True)
@click.option("--wait", is_flag=True, help="Wait for each part's status report.")
@click.option("--wait-timeout", default=120.0, show_default=True, help="Seconds for --wait.")
@_pin
@_timeout
@_verbose
def send(
    *,
    port: str,
    number: str,
    text: str,
    status_report: bool,
    wait: bool,
    wait_timeout: float,
    pin: str | None,
    timeout: float,
    verbose: bool,
) -> None:
    """Send TEXT to NUMBER; JSON per part with TP-MR (and its status report with --wait)."""
    _logging(verbose)

    async def main() -> dict[str, Any]:
        async def keep(item: Inbound) -> bool:
            return isinstance(item, InboundStatusReport)  # reports we consumed are deleted

        client = ModemClient(port, config=_config(pin, timeout), on_inbound=keep)
        await client.open()
        try:
            async with client.events() as events:
                parts: list[PartResult] = await client.send_sms(
                    number, text, status_report=status_report
                )
                out: dict[str, Any] = {"parts": [to_json(p) for p in parts]}
                if wait and status_report:
                    out["reports"] = await _wait_reports(events, parts, wait_timeout)
        finally:
            await client.close()
        return out

    result = _run(main())
    emit(result)
    if any(p["status"] != SubmitStatus.SENT.value for p in result["parts"]):
        sys.exit(1)


async def _wait_reports(
    events: asyncio.Queue[ClientEvent], parts: list[PartResult], seconds: float
) -> list[dict[str, Any]]:
    wanted = {p.message_reference for p in parts if p.message_reference is not None}
    found: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while wanted:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                event = await events.get()
        except TimeoutError:
            break
        if isinstance(event, InboundStatusReport) and event.report.message_reference in wanted:
            wanted.discard(event.report.message_reference)
            found.append(_inbound_json(event))
    for mr in sorted(wanted):
        found.append({"type": "status_report", "message_reference": mr, "timeout": True})
    return found


@modem_group.command("listen")
@_port
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.option("--count", default=0, help="Stop after this many items (0: no limit).")
@click.option("--keep", is_flag=True, help="Do not delete what was received from the modem.")
@_pin
@_timeout
@_verbose
def listen(
    *,
    port: str,
    duration: float,
    count: int,
    keep: bool,
    pin: str | None,
    timeout: float,
    verbose: bool,
) -> None:
    """JSON lines: reassembled inbound SMS and status reports, as they arrive."""
    _logging(verbose)
    joiner = Reassembler()
    emitted = 0
    done = asyncio.Event()

    def counted(obj: dict[str, Any]) -> None:
        nonlocal emitted
        emit(obj)
        emitted += 1
        if count and emitted >= count:
            done.set()

    async def handle(item: Inbound) -> bool:
        if isinstance(item, InboundSms):
            whole = joiner.add(item.deliver, now=datetime.now(UTC))
            if whole is not None:
                counted(
                    {
                        "type": "sms",
                        "originator": str(whole.originator),
                        "scts": to_json(whole.scts),
                        "text": whole.text,
                        "data": to_json(whole.data),
                        "parts": len(whole.parts),
                        "encoding": to_json(whole.encoding),
                    }
                )
        else:
            counted(_inbound_json(item))
        return not keep

    async def main() -> None:
        config = dataclasses.replace(_config(pin, timeout), scan_on_start=True)
        client = ModemClient(port, config=config, on_inbound=handle)
        await client.open()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration if duration > 0 else None):
                    await done.wait()
        finally:
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        _run(main())


@modem_group.command("ussd")
@_port
@click.argument("code")
@_pin
@_timeout
@_verbose
def ussd(port: str, code: str, pin: str | None, timeout: float, verbose: bool) -> None:
    """Send a USSD CODE (e.g. *100#) and print the network's decoded answer."""
    _logging(verbose)

    async def main() -> dict[str, Any]:
        client = ModemClient(port, config=_config(pin, timeout))
        await client.open()
        try:
            answer = await client.ussd(code)
        finally:
            await client.close()
        return {
            "status": answer.status,
            "text": answer.text,
            "dcs": answer.dcs,
            "raw": answer.raw,
        }

    emit(_run(main()))


@modem_group.command("at")
@_port
@click.argument("command")
@_timeout
@_verbose
def at(port: str, command: str, timeout: float, verbose: bool) -> None:
    """Send one raw AT COMMAND (support); print its lines and final result."""
    _logging(verbose)

    async def main() -> dict[str, Any]:
        client = ModemClient(port, config=_config(None, timeout))
        await client.open(initialise=False)
        try:
            resp = await client.at(command, timeout=timeout)
        finally:
            await client.close()
        return {
            "command": resp.command.line,
            "lines": list(resp.lines),
            "result": str(resp.result),
            "ok": resp.ok,
        }

    result = _run(main())
    emit(result)
    if not result["ok"]:
        sys.exit(1)
