"""Fuzz target: random and mutated PDUs must decode or raise PduError, nothing else."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modem.pdu import (
    Address,
    PduError,
    Reassembler,
    SmsDeliver,
    build_submits,
    decode_pdu,
    encode_pdu,
    to_fields,
)

# The shared inputs sit next to the repository (../shared); a clone elsewhere still finds them.
_VECTORS_DIR = Path(__file__).resolve().parents[3] / "shared" / "vectors"
if not _VECTORS_DIR.is_dir():
    _VECTORS_DIR = Path("/work/shared/vectors")
VECTORS = _VECTORS_DIR / "pdus.jsonl"
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Seed:
    """One real PDU to mutate: raw octets and whether they begin with an SMSC field."""

    data: bytes
    smsc_included: bool


@dataclass
class FuzzStats:
    """What a fuzz run did: cases tried, PDUs decoded, PDUs rejected with PduError."""

    cases: int = 0
    decoded: int = 0
    rejected: int = 0


class FuzzEscapeError(AssertionError):
    """Something other than PduError escaped; carries the input that did it."""


# Our own submits add what the vectors have little of: 16-bit references, shift-table headers,
# UCS-2 surrogate pairs split over parts, an SMSC address.
_GENERATED = (
    ("x" * 150 + "€[]" + "y" * 200, {"ref16": True, "status_report": True}),
    ("şğı " * 60, {"allow_national": True}),
    ("😀" * 40, {"reference": 200}),
    ("Hello", {}),
)


def load_seeds(path: Path = VECTORS) -> list[Seed]:
    """Every vector PDU (valid and invalid) plus a few generated submits, as mutation seeds."""
    seeds = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                v = json.loads(line)
                seeds.append(Seed(bytes.fromhex(v["pdu"]), bool(v.get("smsc_included", True))))
    smsc = Address.parse("+447700900123")
    for text, options in _GENERATED:
        for submit in build_submits("+447700900456", text, **options):
            seeds.append(Seed(bytes.fromhex(encode_pdu(submit, smsc).hex), True))
    return seeds


# --- mutators: each takes (rng, data) and returns new data -------------------------------------


def _flip_bits(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _length_fields(rng: random.Random, data: bytes) -> bytes:
    """Change octets where length fields live (SMSC length, address lengths, UDL, UDHL, IE len)."""
    if not data:
        return data
    buf = bytearray(data)
    # Length octets sit near the front (SMSC, TP-OA/DA) or just before the user data; pick
    # those positions more often than a uniform flip would.
    candidates = [0, 1, 2, 3, len(buf) // 2, len(buf) - 1]
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.6:
            i = min(rng.choice(candidates), len(buf) - 1)
        else:
            i = rng.randrange(len(buf))
        buf[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, (buf[i] + 1) & 0xFF, (buf[i] - 1) & 0xFF])
    return bytes(buf)


def _udl_extremes(rng: random.Random, data: bytes) -> bytes:
    """Set one octet to a user-data-length style extreme (0, 140, 160, 161, 255)."""
    if not data:
        return data
    buf = bytearray(data)
    buf[rng.randrange(len(buf))] = rng.choice([0, 6, 7, 139, 140, 141, 159, 160, 161, 255])
    return bytes(buf)


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 8) :]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 16))
    return data[:j] + data[i:j] + data[j:]


def _udhi_toggle(rng: random.Random, data: bytes) -> bytes:
    """Toggle TP-UDHI (0x40) on the octet that is the first TPDU octet with or without SMSC."""
    if not data:
        return data
    buf = bytearray(data)
    i = min(len(buf) - 1, rng.choice([0, (buf[0] + 1) if buf[0] < len(buf) else 0]))
    buf[i] ^= 0x40
    return bytes(buf)


MUTATORS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _flip_bits,
    _truncate,
    _length_fields,
    _udl_extremes,
    _insert,
    _delete,
    _duplicate,
    _udhi_toggle,
)


# --- synthetic PDUs: every field present, each drawn from plausible and hostile values ----------

_IEIS = (0x00, 0x08, 0x04, 0x05, 0x24, 0x25, 0x01, 0x0A, 0x70, 0xFF)


def _pick_length(rng: random.Random, natural: int) -> int:
    """Mostly the length the content has; sometimes one off or anything."""
    roll = rng.random()
    if roll < 0.7:
        return natural
    if roll < 0.9:
        return max(0, min(255, natural + rng.choice((-1, 1))))
    return rng.randrange(256)


def _bcd(rng: random.Random, values: list[int]) -> bytes:
    """Swapped-nibble BCD octets for two-digit values."""
    return bytes(((v % 10) << 4) | (v // 10) for v in values)


def _address(rng: random.Random) -> bytes:
    toa = rng.choice((0x91, 0x81, 0xA1, 0xD0, 0xC9, rng.randrange(256)))
    digits = rng.randint(0, 20)
    if rng.random() < 0.2:
        body = rng.randbytes((digits + 1) // 2)
    else:
        # Valid semi-octets (with the F filler when odd), or packed text for alphanumeric TOAs.
        body = _bcd(rng, [rng.randrange(100) for _ in range(digits // 2)])
        if digits % 2:
            body += bytes((0xF0 | rng.randrange(10),))
    return bytes((_pick_length(rng, digits), toa)) + body


def _timestamp(rng: random.Random) -> bytes:
    if rng.random() < 0.15:
        return rng.randbytes(7)
    fields = [rng.randrange(100), rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24)]
    fields += [rng.randrange(60), rng.randrange(60)]
    zone = rng.randrange(80)
    tz = _bcd(rng, [zone])[0] | (0x08 if rng.random() < 0.3 else 0)
    return _bcd(rng, fields) + bytes((tz,))


def _element_data(rng: random.Random, iei: int) -> bytes:
    """IE data shaped for its IEI most of the time (concatenation, ports, shift tables)."""
    if rng.random() < 0.3:
        return rng.randbytes(rng.choice((0, 1, 2, 3, 4, 6)))
    total = rng.randint(0, 5)
    seq = rng.randint(0, total + 1)
    if iei == 0x00:
        return bytes((rng.randrange(256), total, seq))
    if iei == 0x08:
        return rng.randbytes(2) + bytes((total, seq))
    if iei == 0x04:
        return rng.randbytes(2)
    if iei == 0x05:
        return rng.randbytes(4)
    if iei in (0x24, 0x25):
        return bytes((rng.randrange(16),))
    return rng.randbytes(rng.randint(0, 6))


def _user_data(rng: random.Random, dcs: int) -> bytes:
    header = b""
    if rng.random() < 0.5:
        elements = b""
        for _ in range(rng.randint(0, 3)):
            iei = rng.choice(_IEIS)
            data = _element_data(rng, iei)
            elements += bytes((iei, _pick_length(rng, len(data)))) + data
        header = bytes((_pick_length(rng, len(elements)),)) + elements
    payload = rng.randbytes(rng.randint(0, 140 - len(header) if len(header) < 140 else 0))
    septets = dcs & 0xCC == 0 or dcs & 0xF4 == 0xF0
    natural = (len(header) + len(payload)) * 8 // 7 if septets else len(header) + len(payload)
    return bytes((_pick_length(rng, natural),)) + header + payload


def synthetic(rng: random.Random) -> tuple[bytes, bool]:
    """A PDU built field by field (SMSC, TPDU of a random type, UDH with random IEs)."""
    smsc_included = rng.random() < 0.7
    out = b""
    if smsc_included:
        out += rng.choice((b"\x00", b"\x01\x81", b"\x07\x91" + rng.randbytes(6), rng.randbytes(3)))
    mti = rng.choice((0, 0, 1, 1, 2, 2, 3))
    first = (rng.randrange(256) & ~0x03) | mti
    dcs = rng.choice(
        (0x00, 0x08, 0x04, 0xF4, 0xF0, 0x10, 0x18, 0xC8, 0xD0, 0xE0, rng.randrange(256))
    )
    if mti == 0:
        out += bytes((first,)) + _address(rng) + bytes((rng.randrange(256), dcs)) + _timestamp(rng)
    elif mti == 1:
        vpf = (first >> 3) & 3
        vp = b"" if vpf == 0 else rng.randbytes(1) if vpf == 2 else _timestamp(rng)
        out += bytes((first, rng.randrange(256))) + _address(rng) + bytes((rng.randrange(256), dcs))
        out += vp
    elif mti == 2:
        out += bytes((first, rng.randrange(256))) + _address(rng) + _timestamp(rng)
        out += _timestamp(rng) + bytes((rng.randrange(256),))
        pi = rng.choice((b"", b"\x00", b"\x01", b"\x02", b"\x03", b"\x07", rng.randbytes(1)))
        out += pi
        if pi and pi[0] & 0x01:
            out += bytes((rng.randrange(256),))
        if pi and pi[0] & 0x02:
            out += bytes((dcs,))
        if not pi or not pi[0] & 0x04:
            return out, smsc_included
    else:
        out += bytes((first,)) + rng.randbytes(rng.randint(0, 20))
        return out, smsc_included
    return out + _user_data(rng, dcs), smsc_included


def cases(seeds: list[Seed], n: int, seed: int) -> Iterator[tuple[bytes | str, bool]]:
    """Yield n (pdu, smsc_included) inputs: mutated vectors, synthetic, random, bad hex."""
    rng = random.Random(seed)
    for _ in range(n):
        roll = rng.random()
        if roll < 0.25:
            yield synthetic(rng)
        elif roll < 0.3:
            data = rng.randbytes(rng.randint(0, 180))
            yield data, rng.random() < 0.5
        elif roll < 0.33:
            # Hex strings: odd length, non-hex characters, whitespace, lower case.
            base = rng.choice(seeds).data.hex()
            s = base[: rng.randrange(len(base) + 1)]
            s = rng.choice([s, s + "G", s.lower(), " " + s, s + "0", s.replace("0", "O", 1)])
            yield s, rng.random() < 0.5
        else:
            src = rng.choice(seeds)
            data = src.data
            for _ in range(rng.randint(1, 3)):
                data = rng.choice(MUTATORS)(rng, data)
            smsc = src.smsc_included if rng.random() < 0.8 else not src.smsc_included
            yield data, smsc


def check_one(
    data: bytes | str,
    smsc_included: bool,
    reassembler: Reassembler,
    stats: FuzzStats,
    strict: bool = False,
) -> None:
    """Decode one input; anything but PduError (or on success, any error downstream) fails."""
    stats.cases += 1
    try:
        pdu = decode_pdu(data, smsc_included=smsc_included, strict=strict)
    except PduError:
        stats.rejected += 1
        return
    except Exception as exc:
        raise FuzzEscapeError(
            f"{type(exc).__name__}: {exc} for {_show(data)} smsc={smsc_included}"
        ) from exc
    stats.decoded += 1
    tpdu = pdu.tpdu
    _must_not_raise(lambda: json.dumps(to_fields(pdu)), data, smsc_included, "to_fields")
    if isinstance(tpdu, SmsDeliver):
        _only_pdu_error(lambda: reassembler.add(tpdu, now=_NOW), data, smsc_included, "reassembly")
    _only_pdu_error(tpdu.encode, data, smsc_included, "re-encode")


def _must_not_raise(step: Callable[[], object], data: bytes | str, smsc: bool, what: str) -> None:
    try:
        step()
    except Exception as exc:
        raise FuzzEscapeError(
            f"{what}: {type(exc).__name__}: {exc} for {_show(data)} smsc={smsc}"
        ) from exc


def _only_pdu_error(step: Callable[[], object], data: bytes | str, smsc: bool, what: str) -> None:
    # A decoded PDU may still be refused downstream (e.g. re-encoding a truncated part).
    try:
        step()
    except PduError:
        return
    except Exception as exc:
        raise FuzzEscapeError(
            f"{what}: {type(exc).__name__}: {exc} for {_show(data)} smsc={smsc}"
        ) from exc


def _show(data: bytes | str) -> str:
    return repr(data) if isinstance(data, str) else data.hex().upper()


def run_fuzz(n: int, seed: int = 0) -> FuzzStats:
    """Run n fuzz cases with a fixed seed; fail on the first non-PduError escape."""
    seeds = load_seeds()
    stats = FuzzStats()
    reassembler = Reassembler()
    for i, (data, smsc) in enumerate(cases(seeds, n, seed)):
        # Mostly lenient (what the receive path uses), every fourth case strict.
        check_one(data, smsc, reassembler, stats, strict=i % 4 == 3)
        if i % 500 == 499:
            # Expire now and then so incomplete groups are handed back and do not pile up.
            reassembler.expire(_NOW + timedelta(days=1), timedelta(hours=1))
    reassembler.expire(_NOW + timedelta(days=1), timedelta(hours=1))
    return stats
