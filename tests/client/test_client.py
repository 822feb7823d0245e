"""ModemClient against a scripted fake modem: init, sending, inbound, USSD, recovery."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from modem import quirks
from modem.client import (
    ClientConfig,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    ModemLost,
    ModemMemory,
    ModemRebooted,
    PartResult,
    SubmitStatus,
    Timeouts,
    UndecodableMessage,
    _PriorityLock,
)
from modem.errors import ModemGone, ModemTimeout, SimLockedError
from modem.pdu import SmsSubmit, decode_pdu
from tests.client.fake import ERROR, OK, PROMPT, FakeModem, deliver_pdu, factory, lines, report_pdu

FAST = Timeouts(
    command=2.0,
    wakeup=0.05,
    prompt=0.3,
    submit=0.3,
    cpin_no_ok=0.05,
    readiness=2.0,
    transient_retry=0.02,
    ussd=1.0,
    drain_quiet=0.02,
    lock=5.0,
    scan_interval=3600.0,
    keepalive=3600.0,
    close=1.0,
)


def config(**kw: object) -> ClientConfig:
    kw.setdefault("timeouts", FAST)
    kw.setdefault("scan_on_start", False)
    return ClientConfig(**kw)  # type: ignore[arg-type]


@asynccontextmanager
async def client_for(
    modem: FakeModem, *, on_inbound: Callable[[Inbound], object] | None = None, **kw: object
) -> AsyncIterator[ModemClient]:
    handler = None
    if on_inbound is not None:

        async def handler(item: Inbound) -> bool:
            result = on_inbound(item)
            if asyncio.iscoroutine(result):
                result = await result
            return bool(result)

    client = ModemClient(
        transport_factory=factory(modem),  # type: ignore[arg-type]
        config=config(**kw),
        on_inbound=handler,
    )
    await client.open()
    try:
        yield client
    finally:
        await client.close()


async def settle(client: ModemClient) -> None:
    """Let the modem's output arrive and queued inbound work finish (no wall-clock waits)."""
    for _ in range(3):
        for _ in range(100):
            await asyncio.sleep(0)
        if client.alive:
            await client.wait_idle(5.0)


# --- initialisation ------------------------------------------------------------------------------


async def test_open_runs_the_full_init_sequence() -> None:
    modem = FakeModem(echo=True)
    async with client_for(modem) as client:
        cmds = modem.commands()
        order = ["AT", "ATE0", "AT+CMEE=1", "AT+CGMI", "AT+CGMM", "AT+CPIN?", "AT+CMGF=0"]
        positions = [cmds.index(c) for c in order]
        assert positions == sorted(positions)
        assert 'AT+CPMS="SM","SM","SM"' in cmds
        assert "AT+CNMI=2,1,2,1,0" in cmds and client.cnmi == (2, 1, 2, 1, 0)
        assert client.scan_storages == ("SM", "ME", "SR")
        assert client.profile.name == "generic"
        assert not client.ack_required


async def test_cnmi_fallback_chain() -> None:
    modem = FakeModem()
    modem.on(r"\+CNMI=2,1,2,1,0", ERROR)  # advertised but rejected (Qualcomm-style)
    async with client_for(modem) as client:
        assert client.cnmi == (2, 1, 0, 2, 0)
        tried = [c for c in modem.commands() if c.startswith("AT+CNMI=") and "?" not in c]
        assert tried == ["AT+CNMI=2,1,2,1,0", "AT+CNMI=2,1,0,2,0"]


async def test_cnmi_everything_rejected_means_polling() -> None:
    modem = FakeModem()
    modem.on(r"\+CNMI=[\d,]+", ERROR)
    async with client_for(modem) as client:
        assert client.cnmi is None


async def test_wakeup_retries_until_the_modem_answers() -> None:
    modem = FakeModem()
    modem.drop_next.add("")  # SIM7000G: the first ATs are eaten by auto-baud
    async with client_for(modem) as client:
        assert modem.commands()[:2] == ["AT", "AT"]
        assert client.alive


async def test_no_answer_at_all_is_modem_gone() -> None:
    modem = FakeModem()
    modem.hung = True
    client = ModemClient(transport_factory=factory(modem), config=config(wakeup_attempts=3))  # type: ignore[arg-type]
    with pytest.raises(ModemGone):
        await client.open()
    assert modem.commands() == ["AT", "AT", "AT"]


async def test_readiness_waits_for_sms_ready() -> None:
    modem = FakeModem()
    attempts = []

    def cmgf(m: re.Match[str]) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            return ERROR
        return OK

    modem.on(r"\+CMGF=0", cmgf)
    async with client_for(modem) as client:
        assert len(attempts) == 3 and client.alive


async def test_pin_is_sent_once_and_a_wrong_pin_never_retried() -> None:
    modem = FakeModem()
    modem.on(r"\+CPIN\?", lines("+CPIN: SIM PIN", "OK"))
    modem.on(r'\+CPIN="\d+"', lines("+CME ERROR: 16"))
    memory = ModemMemory()
    cfg = config(pin="1234")
    client = ModemClient(transport_factory=factory(modem), config=cfg, memory=memory)  # type: ignore[arg-type]
    with pytest.raises(SimLockedError, match="not retried"):
        await client.open()
    assert modem.commands().count('AT+CPIN="1234"') == 1
    # The supervisor reconnects with the same memory: the PIN is not sent a second time.
    again = ModemClient(transport_factory=factory(modem), config=cfg, memory=memory)  # type: ignore[arg-type]
    with pytest.raises(SimLockedError, match="already tried"):
        await again.open()
    assert modem.commands().count('AT+CPIN="1234"') == 1


def _pin_locked_modem(pin: str) -> tuple[FakeModem, dict[str, bool]]:
    """A modem whose SIM asks for `pin` while state["locked"], and unlocks when given it."""
    modem = FakeModem()
    state = {"locked": True}
    modem.on(
        r"\+CPIN\?",
        lambda m: lines("+CPIN: SIM PIN" if state["locked"] else "+CPIN: READY", "OK"),
    )

    def enter(m: re.Match[str]) -> str:
        state["locked"] = False
        return OK

    modem.on(rf'\+CPIN="{pin}"', enter)
    return modem, state


async def test_correct_pin_unlocks() -> None:
    modem, _ = _pin_locked_modem("4321")
    async with client_for(modem, pin="4321") as client:
        assert client.alive


async def test_no_pin_configured_is_refused_without_guessing() -> None:
    modem = FakeModem()
    modem.on(r"\+CPIN\?", lines("+CPIN: SIM PUK", "OK"))
    client = ModemClient(transport_factory=factory(modem), config=config(pin="1234"))  # type: ignore[arg-type]
    with pytest.raises(SimLockedError, match="PUK"):
        await client.open()
    assert not any(c.startswith("AT+CPIN=") for c in modem.commands())


async def test_cpin_without_ok_wavecom() -> None:
    modem = FakeModem(manufacturer=" WAVECOM MODEM", model=" MULTIBAND  900E  1800 ")
    modem.on(r"\+CPIN\?", lines("+CPIN: READY"))
    async with client_for(modem) as client:
        assert client.profile is quirks.WAVECOM
        assert client.stats["timeouts"] == 0


@pytest.mark.parametrize(
    ("answer", "imei", "valid"),
    [
        ("1234567890", "1234567890", False),  # ofono-phonesim src/default.xml
        ('+CGSN: "869777028421538"', "869777028421538", True),  # SIM7600, TinyGSM #444
        ('+GSN: "869777028421538"', "869777028421538", True),  # SIM7600 answering as +GSN
        ("IMEI: 356938035643809", "356938035643809", True),
        ("2623CKLQ0009707", "2623CKLQ0009707", False),  # nRF93M1, Zephyr PR 118423
        ("NOT PROVISIONED", "NOT PROVISIONED", False),
    ],
)
async def test_identity_keeps_what_the_modem_said(answer: str, imei: str, valid: bool) -> None:
    modem = FakeModem()
    modem.on(r"\+CGSN", lines(answer, "OK"))
    modem.on(r"\+CIMI", lines("246813579", "OK"))  # phonesim's 9-digit IMSI
    modem.on(r"\+CCID", lines("+CCID: SIM not inserted", "OK"))
    modem.on(r"\+CNUM", lines('+CNUM: ,"+358501234567",145,,4', "OK"))
    async with client_for(modem) as client:
        ident = await client.identity()
    assert ident.imei == imei and ident.imei_valid is valid
    assert ident.details.imei is not None and ident.details.imei.raw == answer
    assert ident.imsi == "246813579" and ident.details.imsi is not None
    assert ident.details.imsi.valid
    # No command gave a well-formed ICCID: the answer there was is kept, marked not valid.
    assert ident.iccid == "SIM not inserted"
    assert ident.details.iccid is not None and not ident.details.iccid.valid
    assert ident.own_number == "+358501234567"


async def test_identity_reads_digits_inside_text_and_ucs2_numbers() -> None:
    # Text around the IMEI and ICCID, and +CNUM in UCS2 hex as u-blox LARA sends with
    # CSCS="UCS2" (QUIRKS 22): each value is the identity itself, the raw answer is kept.
    ucs2 = "+447700900123".encode("utf-16-be").hex().upper()
    modem = FakeModem()
    modem.on(r"\+CGSN", lines("IMEI: 356938035643809 OK-ish", "OK"))
    modem.on(r"\+CIMI", lines("246813579", "OK"))
    modem.on(r"\+CCID", lines("+CCID: 8944100030123456788 (SIM)", "OK"))
    modem.on(r"\+CNUM", lines(f'+CNUM: "","{ucs2}",145', "OK"))
    async with client_for(modem) as client:
        ident = await client.identity()
    assert ident.imei == "356938035643809" and ident.imei_valid
    assert (
        ident.details.imei is not None and ident.details.imei.raw == "IMEI: 356938035643809 OK-ish"
    )
    assert ident.iccid == "8944100030123456788"
    assert ident.details.iccid is not None and ident.details.iccid.valid
    assert ident.details.iccid.check_digit is False  # marked, and the SIM still binds by it
    assert ident.own_number == "+447700900123"


async def test_identity_is_none_only_when_the_modem_refuses() -> None:
    modem = FakeModem()
    modem.on(r"\+CGSN", ERROR)
    modem.on(r"\+CGMR", lines("OK"))
    async with client_for(modem) as client:
        ident = await client.identity()
    assert ident.imei is None and ident.details.imei is None and not ident.imei_valid
    assert ident.revision is None


async def test_transient_sim_busy_is_retried() -> None:
    modem = FakeModem()
    answers = iter([lines("+CME ERROR: 14"), lines("+CME ERROR: 14")])
    modem.on(r"\+CSCA\?", lambda m: next(answers, lines('+CSCA: "+4917000000",145', "OK")))
    async with client_for(modem) as client:
        assert (await client.smsc()).number == "+4917000000"


async def test_probe_information() -> None:
    modem = FakeModem()
    async with client_for(modem) as client:
        ident = await client.identity()
        assert (ident.manufacturer, ident.model, ident.imei) == (
            "FakeCom",
            "FM-1",
            "356938035643809",
        )
        assert ident.imsi == "262011234567890" and ident.iccid == "89490200001234567890"
        assert (await client.signal()).dbm == -73
        reg = await client.registration()
        assert reg.registered and reg.lac == "5E25"
        assert (await client.operator()).name == "Fake Net"
        assert [u.used for u in await client.storage_usage()] == [0, 0, 0]


# --- sending -------------------------------------------------------------------------------------


async def test_send_single_part() -> None:
    modem = FakeModem()
    async with client_for(modem) as client:
        (part,) = await client.send_sms("+4915199999999", "hello")
        assert part.status is SubmitStatus.SENT and part.message_reference == 10
        assert (part.part, part.parts) == (1, 1)
        submit = decode_pdu(modem.submitted[0]).tpdu
        assert isinstance(submit, SmsSubmit) and submit.status_report_request
        assert submit.user_data.text == "hello"
        cmgs = [c for c in modem.commands() if c.startswith("AT+CMGS=")]
        assert cmgs == [f"AT+CMGS={len(modem.submitted[0]) // 2 - 1}"]


async def test_send_multipart_ucs2() -> None:
    modem = FakeModem()
    async with client_for(modem) as client:
        text = "Привет, мир! " * 10
        parts = await client.send_sms("+4915199999999", text, status_report=False)
        assert [p.status for p in parts] == [SubmitStatus.SENT] * len(parts)
        assert len(parts) == 2 and [p.message_reference for p in parts] == [10, 11]
        decoded = [decode_pdu(b).tpdu for b in modem.submitted]
        refs = {d.user_data.header.concatenation.reference for d in decoded}  # type: ignore[union-attr]
        assert len(refs) == 1


async def test_cms_error_fails_the_part_and_skips_the_rest() -> None:
    modem = FakeModem()
    modem.body_reply = lambda body: lines("+CMS ERROR: 500")  # type: ignore[method-assign]
    async with client_for(modem) as client:
        parts = await client.send_sms("+4915199999999", "x" * 200)
        assert parts[0].status is SubmitStatus.FAILED and parts[0].cms_code == 500
        assert parts[1].status is SubmitStatus.FAILED and "not submitted" in (parts[1].reason or "")
        assert len(modem.submitted) == 1


async def test_urcs_inside_cmgs_do_not_disturb_it() -> None:
    modem = FakeModem()
    modem.storages["SM"][3] = (0, deliver_pdu("inside"))
    modem.prompt = '\r\n+CMTI: "SM",3\r\n\r\n> '

    def reply(body: str) -> str:
        return lines('+CDSI: "SR",1') + modem.submit_ok(body)

    modem.body_reply = reply  # type: ignore[method-assign]
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        (part,) = await client.send_sms("+4915199999999", "hi")
        assert part.status is SubmitStatus.SENT
        await settle(client)
        assert [i.deliver.user_data.text for i in got if isinstance(i, InboundSms)] == ["inside"]
        assert 3 not in modem.storages["SM"]


async def test_timeout_after_pdu_is_unknown_and_resyncs() -> None:
    modem = FakeModem()
    modem.body_reply = lambda body: None  # type: ignore[method-assign]
    async with client_for(modem) as client:
        (part,) = await client.send_sms("+4915199999999", "lost?")
        assert part.status is SubmitStatus.UNKNOWN
        assert "answer to AT+CMGS" in (part.reason or "")
        modem.body_reply = modem.submit_ok  # type: ignore[method-assign]
        (part2,) = await client.send_sms("+4915199999999", "again")
        assert part2.status is SubmitStatus.SENT
        written = modem.written
        first_body = written.index(f"<{modem.submitted[0]}>")
        # Resync before the next command: ESC (harmless outside a prompt), then a barrier.
        assert written[first_body + 1 : first_body + 3] == ["<ESC>", "AT+CMEE?"]
        assert client.stats["resyncs"] == 1


async def test_no_prompt_is_failed_not_unknown() -> None:
    modem = FakeModem()
    modem.on(r"\+CMGS=\d+", None)
    async with client_for(modem) as client:
        (part,) = await client.send_sms("+4915199999999", "x")
        assert part.status is SubmitStatus.FAILED and part.reason == "no prompt"
        assert "<ESC>" in modem.written


async def test_cancelled_caller_does_not_cut_cmgs() -> None:
    modem = FakeModem(split=True)
    async with client_for(modem) as client:
        results: list[PartResult] = []
        client.add_listener(lambda e: results.append(e) if isinstance(e, PartResult) else None)
        task = asyncio.create_task(client.send_sms("+4915199999999", "shielded"))
        while not any(c.startswith("AT+CMGS") for c in modem.commands()):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(client)
        assert [r.status for r in results] == [SubmitStatus.SENT]
        assert len(modem.submitted) == 1
        cmgs = next(i for i, w in enumerate(modem.written) if w.startswith("AT+CMGS"))
        assert "<ESC>" not in modem.written[cmgs:]  # no resync: the exchange was not cut


async def test_prompt_without_space_and_echo() -> None:
    modem = FakeModem(echo=True, prompt="\r\n>")
    async with client_for(modem) as client:
        (part,) = await client.send_sms("+4915199999999", "echoed")
        assert part.status is SubmitStatus.SENT


# --- inbound -------------------------------------------------------------------------------------


async def test_cmti_read_handed_over_then_deleted() -> None:
    modem = FakeModem()
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        modem.storages["ME"][7] = (0, deliver_pdu("stored in ME"))
        modem.send(lines('+CMTI: "ME",7'))
        await settle(client)
        assert len(got) == 1 and isinstance(got[0], InboundSms)
        assert (got[0].storage, got[0].index) == ("ME", 7)
        assert got[0].deliver.user_data.text == "stored in ME"
        assert 7 not in modem.storages["ME"]
        cmds = modem.commands()
        # Storage selection and the read/delete share one line: a reset cannot split them.
        read = cmds.index('AT+CPMS="ME","SM","SM";+CMGR=7')
        assert read < cmds.index('AT+CPMS="ME","SM","SM";+CMGD=7')


async def test_modem_without_concatenation_gets_separate_commands() -> None:
    modem = FakeModem(concat=False)
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        modem.storages["ME"][7] = (0, deliver_pdu("one at a time"))
        modem.send(lines('+CMTI: "ME",7'))
        await settle(client)
        assert [i.deliver.user_data.text for i in got if isinstance(i, InboundSms)] == [
            "one at a time"
        ]
        cmds = modem.commands()
        assert cmds.index('AT+CPMS="ME","SM","SM"') < cmds.index("AT+CMGR=7")
        assert cmds.index("AT+CMGR=7") < cmds.index("AT+CMGD=7")
        assert 7 not in modem.storages["ME"]


async def test_not_stored_means_not_deleted() -> None:
    modem = FakeModem()
    outcomes = iter([False])

    def handler(item: Inbound) -> bool:
        return next(outcomes, True)

    async with client_for(modem, on_inbound=handler) as client:
        modem.storages["SM"][1] = (0, deliver_pdu("keep me"))
        modem.send(lines('+CMTI: "SM",1'))
        await settle(client)
        assert 1 in modem.storages["SM"]
        assert not any(c.startswith("AT+CMGD") for c in modem.commands())
        assert await client.scan() == 1  # found again and now stored
        assert 1 not in modem.storages["SM"]


async def test_handler_crash_keeps_the_message() -> None:
    modem = FakeModem()

    def handler(item: Inbound) -> bool:
        raise RuntimeError("database down")

    async with client_for(modem, on_inbound=handler) as client:
        modem.storages["SM"][2] = (0, deliver_pdu("x"))
        modem.send(lines('+CMTI: "SM",2'))
        await settle(client)
        assert 2 in modem.storages["SM"] and client.alive


async def test_undecodable_pdu_is_reported_and_kept() -> None:
    modem = FakeModem()
    events: list[object] = []
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        client.add_listener(events.append)
        modem.storages["SM"][4] = (1, "0BD04259303784FFFF")
        modem.send(lines('+CMTI: "SM",4'))
        await settle(client)
        assert got == []
        assert any(isinstance(e, UndecodableMessage) and e.index == 4 for e in events)
        assert 4 in modem.storages["SM"]


async def test_start_scan_reads_every_storage() -> None:
    modem = FakeModem()
    modem.storages["SM"][1] = (1, deliver_pdu("from SM"))
    modem.storages["ME"][5] = (0, deliver_pdu("from ME"))
    modem.storages["SR"][2] = (0, report_pdu(10))
    modem.storages["SM"][9] = (3, "0011000B917477123456F70000AA05E8329BFD06")  # our own SUBMIT
    got: list[Inbound] = []
    async with client_for(
        modem, on_inbound=lambda i: got.append(i) or True, scan_on_start=True
    ) as client:
        await settle(client)
        texts = sorted(i.deliver.user_data.text for i in got if isinstance(i, InboundSms))
        assert texts == ["from ME", "from SM"]
        reports = [i for i in got if isinstance(i, InboundStatusReport)]
        assert [r.report.message_reference for r in reports] == [10]
        assert modem.storages["SM"] == {9: (3, "0011000B917477123456F70000AA05E8329BFD06")}
        assert modem.storages["ME"] == {} and modem.storages["SR"] == {}


async def test_cmt_is_acknowledged_when_the_service_needs_it() -> None:
    modem = FakeModem(csms_service=1)
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        assert client.ack_required
        pdu = deliver_pdu("direct")
        modem.send(lines(f"+CMT: ,{len(pdu) // 2 - 8}", pdu))
        await settle(client)
        assert [i.deliver.user_data.text for i in got if isinstance(i, InboundSms)] == ["direct"]
        assert "AT+CNMA" in modem.commands()


async def test_cds_inline_report() -> None:
    modem = FakeModem()
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        pdu = report_pdu(42, status=0)
        modem.send(lines(f"+CDS: {len(pdu) // 2 - 8}", pdu))
        await settle(client)
        (item,) = got
        assert isinstance(item, InboundStatusReport) and item.report.message_reference == 42
        assert "AT+CNMA" not in modem.commands()


async def test_quectel_report_announced_as_sm_is_read_from_sr() -> None:
    modem = FakeModem(manufacturer="Quectel", model="EC25")
    modem.storages["SR"][0] = (0, report_pdu(78))
    modem.storages["SM"][0] = (1, deliver_pdu("unrelated SMS in SM slot 0"))
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        assert client.cnmi == (2, 1, 0, 1, 0)  # ds=1 preferred on Quectel
        modem.send(lines('+CDSI: "SM",0'))
        await settle(client)
        assert [type(i).__name__ for i in got] == ["InboundStatusReport"]
        assert 0 in modem.storages["SM"]  # the unrelated SMS was not read nor deleted


async def test_degenerate_cmti_triggers_a_scan() -> None:
    modem = FakeModem()
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        modem.storages["SM"][1] = (0, deliver_pdu("found by scan"))
        modem.send(lines("+CMTI: ,-1"))
        await settle(client)
        assert len(got) == 1


# --- USSD ----------------------------------------------------------------------------------------


async def test_ussd_answer_before_ok_and_release_noise() -> None:
    modem = FakeModem()
    modem.on(
        r"\+CUSD=1,.*",
        lambda m: (
            lines('+CUSD: 2,"Initiating Release",15')
            + lines('+CUSD: 0,"00480061007600690020006B0065007200650074",15')
            + OK
        ),
    )
    async with client_for(modem) as client:
        answer = await client.ussd("*100#")
        assert answer.text == "Havi keret" and answer.status == 0
        assert 'AT+CUSD=1,"*100#",15' in modem.commands()


async def test_ussd_timeout_cancels_the_session() -> None:
    modem = FakeModem()
    modem.on(r"\+CUSD=1,.*", OK)
    async with client_for(modem) as client:
        with pytest.raises(ModemTimeout, match="CUSD"):
            await client.ussd("*100#", timeout=0.05)
        assert "AT+CUSD=2" in modem.commands()


async def test_huawei_sets_ussd_mode_and_curc() -> None:
    modem = FakeModem(manufacturer="huawei", model="E1752")
    modem.on(r"\^USSDMODE=0", OK)
    async with client_for(modem) as client:
        assert client.profile is quirks.HUAWEI
        assert "AT^USSDMODE=0" in modem.commands() and "AT^CURC=0" in modem.commands()


# --- recovery ------------------------------------------------------------------------------------


async def test_reboot_mid_session_reinitialises() -> None:
    modem = FakeModem()
    events: list[object] = []
    async with client_for(modem) as client:
        client.add_listener(events.append)
        n_before = modem.commands().count("AT+CMGF=0")
        modem.cnmi = "0,0,0,0,0"  # settings lost
        modem.send(lines("RDY", "+CPIN: READY", "SMS Ready"))
        await settle(client)
        assert any(isinstance(e, ModemRebooted) for e in events)
        assert modem.commands().count("AT+CMGF=0") == n_before + 1
        assert modem.cnmi == "2,1,2,1,0"
        assert client.stats["reboots"] == 1


async def test_periodic_huawei_boot_urc_is_not_a_reboot() -> None:
    modem = FakeModem(manufacturer="huawei")
    modem.on(r"\^USSDMODE=0", OK)
    async with client_for(modem) as client:
        n_before = modem.commands().count("AT+CMGF=0")
        modem.send("^BOOT:35323129,0,0,0,26\r\n")
        await settle(client)
        assert "AT+CNMI?" in modem.commands()
        assert modem.commands().count("AT+CMGF=0") == n_before
        assert client.stats["reboots"] == 0


async def test_consecutive_timeouts_mean_modem_gone() -> None:
    modem = FakeModem()
    events: list[object] = []
    async with client_for(modem, max_timeouts=2, timeouts=replace(FAST, command=0.1)) as client:
        client.add_listener(events.append)
        modem.hung = True
        with pytest.raises(ModemTimeout):
            await client.signal()
        with pytest.raises(ModemGone):
            await client.signal()
        with pytest.raises(ModemGone):
            await client.signal()
        assert not client.alive
        assert any(isinstance(e, ModemLost) for e in events)


async def test_unplug_is_modem_gone_and_a_send_reports_failure() -> None:
    modem = FakeModem()
    async with client_for(modem) as client:
        assert modem.transport is not None
        modem.transport.unplug()
        await settle(client)
        assert not client.alive
        with pytest.raises(ModemGone):
            await client.send_sms("+4915199999999", "x")


async def test_unplug_during_cmgs_after_the_pdu_is_unknown() -> None:
    modem = FakeModem()

    def vanish(body: str) -> None:
        assert modem.transport is not None
        asyncio.get_running_loop().call_soon(modem.transport.unplug)

    modem.body_reply = vanish  # type: ignore[method-assign,assignment]
    async with client_for(modem) as client:
        (part,) = await client.send_sms("+4915199999999", "x")
        assert part.status is SubmitStatus.UNKNOWN


async def test_late_answer_after_timeout_is_drained() -> None:
    modem = FakeModem()
    late: list[str] = []

    def slow(m: re.Match[str]) -> None:
        late.append("pending")

    modem.on(r"\+CSQ", slow)
    async with client_for(modem, timeouts=replace(FAST, command=0.1)) as client:
        with pytest.raises(ModemTimeout):
            await client.signal()
        # The late answer arrives now: it must not be paired with the next command.
        modem.send(lines("+CSQ: 5,0", "OK"))
        modem.on(r"\+CSQ", lines("+CSQ: 25,0", "OK"))
        assert (await client.signal()).rssi == 25
        assert client.stats["stale"] >= 1


async def test_garbage_on_the_line_is_survived() -> None:
    modem = FakeModem()
    async with client_for(modem) as client:
        modem.send(b"\x00\xff\xfe\x80garbage\r\n")
        assert (await client.signal()).rssi == 20
        (part,) = await client.send_sms("+4915199999999", "x")
        assert part.status is SubmitStatus.SENT


async def test_priority_lock_hands_over_to_urgent_waiters_first() -> None:
    lock = _PriorityLock()
    await lock.acquire()
    order: list[str] = []

    async def take(name: str, prio: int) -> None:
        await lock.acquire(prio)
        order.append(name)
        lock.release()

    tasks = [
        asyncio.create_task(take("work1", 0)),
        asyncio.create_task(take("work2", 0)),
        asyncio.create_task(take("watchdog", 1)),
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["watchdog", "work1", "work2"]
    assert not lock.locked


async def test_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = _PriorityLock()
    await lock.acquire()
    waiter = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not lock.locked


async def test_late_cmgs_answer_cannot_pass_for_the_next_submit() -> None:
    modem = FakeModem()
    pending: list[str] = []

    def slow(body: str) -> None:
        pending.append(body)  # the network answers much later

    modem.body_reply = slow  # type: ignore[method-assign,assignment]
    async with client_for(modem) as client:
        (first,) = await client.send_sms("+4915199999999", "slow one")
        assert first.status is SubmitStatus.UNKNOWN
        # The late answer to the first submit lands while the second one waits for its prompt.
        modem.on(r"\+CMGS=\d+", lambda m: lines("+CMGS: 99", "OK"))
        (second,) = await client.send_sms("+4915199999999", "next one")
        assert second.status is SubmitStatus.FAILED and second.message_reference is None
        assert "belongs to an earlier command" in (second.reason or "")
        modem.on(r"\+CMGS=\d+", PROMPT)
        modem.body_reply = modem.submit_ok  # type: ignore[method-assign]
        (third,) = await client.send_sms("+4915199999999", "after resync")
        assert third.status is SubmitStatus.SENT and third.message_reference == 10


async def test_drifted_read_is_not_taken_for_a_message() -> None:
    modem = FakeModem()
    got: list[Inbound] = []
    async with client_for(modem, on_inbound=lambda i: got.append(i) or True) as client:
        modem.storages["SM"][1] = (0, deliver_pdu("real"))
        # A stray +CSQ answer glued to the read: not this command's answer -> desync, resync.
        modem.on(r"\+CMGR=1", lambda m: lines("+CSQ: 5,0", "OK"))
        modem.send(lines('+CMTI: "SM",1'))
        await settle(client)
        assert got == [] and 1 in modem.storages["SM"]
        modem.rules.pop(0)
        assert await client.scan() == 1
        assert client.stats["resyncs"] == 1  # the scan resynchronised first
        assert [i.deliver.user_data.text for i in got if isinstance(i, InboundSms)] == ["real"]
        assert 1 not in modem.storages["SM"]


async def test_open_leaves_a_prompt_a_dead_owner_left_behind() -> None:
    # The daemon was killed between "> " and the PDU: the modem still waits for PDU text.
    modem = FakeModem()
    async with client_for(modem):
        pass
    assert modem.written[0] == "<ESC>"  # before the first AT of the wake-up
    assert modem.written[1].startswith("AT")


async def test_a_good_pin_is_sent_again_after_the_modem_rebooted() -> None:
    modem, state = _pin_locked_modem("4321")
    memory = ModemMemory()
    cfg = config(pin="4321")
    first = ModemClient(transport_factory=factory(modem), config=cfg, memory=memory)  # type: ignore[arg-type]
    await first.open()
    await first.close()
    state["locked"] = True  # power cycle: the SIM asks for its PIN again
    second = ModemClient(transport_factory=factory(modem), config=cfg, memory=memory)  # type: ignore[arg-type]
    await second.open()
    assert second.alive
    await second.close()
    assert modem.commands().count('AT+CPIN="4321"') == 2
