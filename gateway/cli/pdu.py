"""`smsgw pdu`: decode, encode and count SMS PDUs (a thin shell over modem.pdu)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import click

from modem.pdu import (
    Address,
    PduError,
    build_submits,
    count,
    decode_pdu,
    encode_pdu,
    to_fields,
)

__all__ = ["parse_duration", "pdu"]

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str) -> timedelta:
    """'1d', '12h', '90m', '2w', '1d12h' -> timedelta (a bare number means minutes)."""
    text = value.strip()
    if text.isdigit():
        return timedelta(minutes=int(text))
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f"not a duration: {value!r} (use e.g. 30m, 12h, 1d, 2w)")
    return timedelta(seconds=sum(int(n) * _UNITS[u.lower()] for n, u in parts))


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _inputs(hexes: tuple[str, ...]) -> Iterator[str]:
    for item in hexes:
        if item == "-":
            for line in sys.stdin:
                line = line.strip()
                if line:
                    yield line
        else:
            yield item


@click.group()
def pdu() -> None:
    """Decode, encode and count SMS PDUs."""


@pdu.command()
@click.option("--no-smsc", is_flag=True, help="The PDUs start with the TPDU (no SMSC field).")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on PDUs that decode only with repairs (anomalies) instead of listing them.",
)
# Lenient decoding (truncated user data included) is the default now; kept for old scripts.
@click.option("--allow-truncated", is_flag=True, hidden=True)
@click.argument("hexes", nargs=-1, required=True, metavar="HEX... | -")
def decode(*, no_smsc: bool, strict: bool, allow_truncated: bool, hexes: tuple[str, ...]) -> None:
    """Print one JSON object per PDU ('anomalies' lists repairs); '-' reads lines from stdin."""
    del allow_truncated
    failed = False
    for item in _inputs(hexes):
        try:
            fields = to_fields(decode_pdu(item, smsc_included=not no_smsc, strict=strict))
        except PduError as exc:
            failed = True
            _emit({"error": str(exc)})
        else:
            _emit(fields)
    if failed:
        sys.exit(1)


@pdu.command()
@click.option("--to", "to", required=True, help="Destination number (+international or national).")
@click.option("--status-report", is_flag=True, help="Request a status report (TP-SRR).")
@click.option("--ref16", is_flag=True, help="Use 16-bit concatenation references.")
@click.option("--reference", type=int, default=0, show_default=True, help="Concatenation ref.")
@click.option("--validity", help="Relative validity period, e.g. 30m, 12h, 1d, 2w.")
@click.option("--smsc", help="SMSC number to put in the PDU (default: the modem's, field 00).")
@click.option("--allow-national", is_flag=True, help="Allow national language shift tables.")
@click.option("--flash", is_flag=True, help="Class 0 (flash) message.")
@click.argument("text")
def encode(
    *,
    to: str,
    status_report: bool,
    ref16: bool,
    reference: int,
    validity: str | None,
    smsc: str | None,
    allow_national: bool,
    flash: bool,
    text: str,
) -> None:
    """Print the PDUs for TEXT as {"encoding", "parts": [{"pdu", "tpdu_length"}]}."""
    try:
        period = parse_duration(validity) if validity is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--validity") from None
    try:
        submits = build_submits(
            Address.parse(to),
            text,
            reference=reference,
            ref16=ref16,
            status_report=status_report,
            validity=period,
            message_class=0 if flash else None,
            allow_national=allow_national,
        )
        smsc_address = Address.parse(smsc) if smsc else None
        parts = [encode_pdu(s, smsc_address) for s in submits]
    except PduError as exc:
        _emit({"error": str(exc)})
        sys.exit(1)
    _emit(
        {
            "encoding": str(submits[0].dcs.alphabet),
            "parts": [{"pdu": p.hex, "tpdu_length": p.tpdu_length} for p in parts],
        }
    )


@pdu.command("count")
@click.option("--ref16", is_flag=True, help="Count with 16-bit concatenation references.")
@click.option("--allow-national", is_flag=True, help="Allow national language shift tables.")
@click.argument("text")
def count_command(*, ref16: bool, allow_national: bool, text: str) -> None:
    """Print encoding, parts, characters, units and units left in the last part."""
    try:
        result = count(text, ref16=ref16, allow_national=allow_national)
    except PduError as exc:
        _emit({"error": str(exc)})
        sys.exit(1)
    _emit(
        {
            "encoding": str(result.encoding),
            "parts": result.parts,
            "characters": result.characters,
            "units": result.units,
            "remaining": result.remaining,
        }
    )
