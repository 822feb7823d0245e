"""PDU -> flat JSON-ready fields, named as in the shared test vectors' README."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from modem.pdu.anomaly import Anomaly
from modem.pdu.dcs import DataCodingScheme
from modem.pdu.tpdu import (
    Pdu,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    UserData,
    relative_validity,
)

__all__ = ["anomalies_json", "to_fields"]


def _user_data_fields(out: dict[str, Any], user_data: UserData, dcs: DataCodingScheme) -> None:
    if user_data.text is not None:
        out["text"] = user_data.text
        out["encoding"] = str(dcs.alphabet)
    else:
        out["data_hex"] = (user_data.data or b"").hex().upper()
        out["encoding"] = "8bit"
    header = user_data.header
    if header is not None:
        concat = header.concatenation
        if concat is not None:
            out["concat"] = {
                "ref": concat.reference,
                "total": concat.total,
                "seq": concat.sequence,
                "ref_bits": concat.ref_bits,
            }
        ports = header.ports
        if ports is not None:
            out["ports"] = {
                "dst": ports.destination,
                "src": ports.originator,
                "bits": ports.port_bits,
            }
    message_class = dcs.message_class
    if message_class is not None:
        out["class"] = int(message_class)
    if user_data.truncated:
        out["truncated"] = True


def to_fields(pdu: Pdu) -> dict[str, Any]:
    """Fields of a decoded PDU: kind, smsc, originator/recipient, text/data_hex, encoding, ..."""
    tpdu = pdu.tpdu
    out: dict[str, Any] = {}
    if isinstance(tpdu, SmsDeliver):
        out["kind"] = "deliver"
        out["smsc"] = None if pdu.smsc is None else str(pdu.smsc)
        out["originator"] = str(tpdu.originator)
        out["scts"] = tpdu.scts.isoformat()
        out["pid"] = tpdu.protocol_identifier
        _user_data_fields(out, tpdu.user_data, tpdu.dcs)
    elif isinstance(tpdu, SmsSubmit):
        out["kind"] = "submit"
        out["smsc"] = None if pdu.smsc is None else str(pdu.smsc)
        out["recipient"] = str(tpdu.destination)
        out["mr"] = tpdu.message_reference
        out["srr"] = tpdu.status_report_request
        out["rd"] = tpdu.reject_duplicates
        out["pid"] = tpdu.protocol_identifier
        validity = tpdu.validity
        if isinstance(validity, datetime):
            out["vp_absolute"] = validity.isoformat()
        elif validity is not None:
            out["vp_relative"] = relative_validity(validity)
        _user_data_fields(out, tpdu.user_data, tpdu.dcs)
    else:
        assert isinstance(tpdu, SmsStatusReport)
        out["kind"] = "status-report"
        out["smsc"] = None if pdu.smsc is None else str(pdu.smsc)
        out["recipient"] = str(tpdu.recipient)
        out["mr"] = tpdu.message_reference
        out["status"] = tpdu.status
        out["scts"] = tpdu.scts.isoformat()
        out["discharge_time"] = tpdu.discharge_time.isoformat()
        if tpdu.protocol_identifier is not None:
            out["pid"] = tpdu.protocol_identifier
        if tpdu.user_data is not None:
            _user_data_fields(out, tpdu.user_data, tpdu.dcs or DataCodingScheme())
    if tpdu.anomalies:
        out["anomalies"] = anomalies_json(tpdu.anomalies)
    return out


def anomalies_json(anomalies: Iterable[Anomaly]) -> list[dict[str, Any]]:
    """Anomalies as JSON-ready objects: code, octet, detail."""
    return [{"code": str(a.code), "octet": a.octet, "detail": a.detail} for a in anomalies]
