"""Keep `make bench` honest: the PDU benchmark's inputs are shared and every codec runs on them."""

from __future__ import annotations

from modem.pdu import Alphabet, SmsDeliver, SmsSubmit, decode_pdu
from tests.bench import bench_pdu


def test_inputs_mix_vectors_and_generated_submits_of_both_alphabets() -> None:
    inputs = bench_pdu.build_inputs()
    tpdus = [decode_pdu(p).tpdu for p in inputs.pdus]
    delivers = [t for t in tpdus if isinstance(t, SmsDeliver)]
    submits = [t for t in tpdus if isinstance(t, SmsSubmit)]
    assert len(delivers) >= 50
    assert {s.dcs.alphabet for s in submits} == {Alphabet.GSM7, Alphabet.UCS2}
    assert any(s.user_data.header is not None for s in submits)  # multipart submits present
    assert len(inputs.texts) >= 5


def test_every_codec_is_measured_in_both_directions() -> None:
    inputs = bench_pdu.build_inputs()
    results = bench_pdu.measure(inputs, min_seconds=0.0)
    for direction in ("decode", "encode"):
        assert set(results[direction]) == {"ours", "gammu", "gsmmodem"}
        assert all(rate > 0 for rate in results[direction].values())
