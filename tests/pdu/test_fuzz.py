"""Short fuzz run for `make test`: random and mutated PDUs raise nothing but PduError."""

from __future__ import annotations

import random

import pytest

from modem.pdu import PduError, decode_pdu, to_fields
from tests.pdu import fuzz_pdu
from tests.pdu.fuzz_pdu import FuzzEscapeError, cases, load_seeds, run_fuzz, synthetic


@pytest.mark.parametrize("seed", [1, 2])
def test_short_fuzz_run_raises_only_pdu_error(seed: int) -> None:
    stats = run_fuzz(2000, seed=seed)
    assert stats.cases == 2000
    # The mix must reach both outcomes, or the run proves nothing about one of them.
    assert stats.decoded > 100
    assert stats.rejected > 100
    assert stats.decoded + stats.rejected == stats.cases


def test_cases_are_reproducible_for_a_seed() -> None:
    seeds = load_seeds()
    assert list(cases(seeds, 50, seed=9)) == list(cases(seeds, 50, seed=9))
    assert list(cases(seeds, 50, seed=9)) != list(cases(seeds, 50, seed=10))


def test_cases_include_hex_strings_and_both_smsc_modes() -> None:
    generated = list(cases(load_seeds(), 1000, seed=3))
    assert any(isinstance(data, str) for data, _ in generated)
    assert {smsc for _, smsc in generated} == {True, False}


def test_harness_reports_an_escape_that_is_not_pdu_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes | str, smsc_included: bool = True, **_: object) -> object:
        raise IndexError("index out of range")

    monkeypatch.setattr(fuzz_pdu, "decode_pdu", broken)
    with pytest.raises(FuzzEscapeError, match="IndexError"):
        run_fuzz(5, seed=0)


def test_harness_accepts_pdu_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def rejecting(data: bytes | str, smsc_included: bool = True, **_: object) -> object:
        raise PduError("bad", 0)

    monkeypatch.setattr(fuzz_pdu, "decode_pdu", rejecting)
    assert run_fuzz(5, seed=0).rejected == 5


def test_synthetic_pdus_reach_every_tpdu_type_and_udh() -> None:
    rng = random.Random(4)
    kinds: set[str] = set()
    concatenated = 0
    for _ in range(3000):
        data, smsc = synthetic(rng)
        try:
            fields = to_fields(decode_pdu(data, smsc_included=smsc))
        except PduError:
            continue
        kinds.add(fields["kind"])
        concatenated += "concat" in fields
    assert kinds == {"deliver", "submit", "status-report"}
    assert concatenated > 0
