"""Faults an emulated modem can be switched into at run time (tests, CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """One kind of misbehaviour; parameters are documented per member."""

    HANG = "hang"  # stop answering (input dropped, nothing written) until cleared
    UNPLUG = "unplug"  # close the PTY; reappear under a new path after `seconds` (same SIM),
    # plugged into USB `port` if given (its /dev/serial/by-path link changes; see udev.py)
    REBOOT = "reboot"  # boot URCs mid-session, settings lost (one-shot)
    # The SIM resets under a running modem (loose contact, brown-out): +CPIN: NOT READY, off the
    # network; back after `seconds` asking for its PIN again if enabled (one-shot)
    PIN_LOSS = "pin_loss"
    SLOW_RADIO = "slow_radio"  # AT+CMGS/CMSS answers after `seconds`
    CMS_ERROR = "cms_error"  # AT+CMGS fails with +CMS ERROR `code` with probability `rate`
    DEREGISTER = "deregister"  # +CREG stat `stat` (0, 2 or 3); sends fail with +CMS ERROR: 331
    STORAGE_FULL = "storage_full"  # storages take nothing more: no +CMTI, SMSC holds messages
    GARBAGE = "garbage"  # `length` random bytes before an answer with probability `rate`
    URC_MID_ANSWER = "urc_mid_answer"  # `line` inside answers (and after the +CMGS prompt), `rate`
    # The next AT+CMGS/CMSS is never answered: right after taking the PDU the modem does `how`
    # (reboot, unplug or hang for `seconds`), after the network accepted the SMS if `sent` is 1,
    # before it if 0 (armed until then; a modem dying mid-send)
    SUBMIT_CRASH = "submit_crash"


CRASHES = ("reboot", "unplug", "hang")


@dataclass(frozen=True)
class SubmitCrash:
    """An armed SUBMIT_CRASH: what the modem does, and whether the SMS got out first."""

    how: str  # one of CRASHES
    sent: bool
    seconds: float = 5.0  # unplugged (then back with the same SIM) or hung for this long

    def __post_init__(self) -> None:
        if self.how not in CRASHES:
            raise ValueError(f"how must be one of {', '.join(CRASHES)}, not {self.how!r}")


@dataclass
class FaultState:
    """The switchable faults of one modem (one-shot faults act immediately and keep no state)."""

    hang: bool = False
    slow_radio: float = 0.0
    cms_error_code: int = 500
    cms_error_rate: float = 0.0
    deregistered_stat: int | None = None
    storage_full: bool = False
    garbage_rate: float = 0.0
    garbage_length: int = 8
    urc_rate: float = 0.0
    urc_line: str = "+CREG: 1"
    submit_crash: SubmitCrash | None = None

    def active(self) -> list[str]:
        """Names of the faults currently switched on."""
        names = []
        if self.hang:
            names.append(Fault.HANG.value)
        if self.slow_radio:
            names.append(Fault.SLOW_RADIO.value)
        if self.cms_error_rate:
            names.append(Fault.CMS_ERROR.value)
        if self.deregistered_stat is not None:
            names.append(Fault.DEREGISTER.value)
        if self.storage_full:
            names.append(Fault.STORAGE_FULL.value)
        if self.garbage_rate:
            names.append(Fault.GARBAGE.value)
        if self.urc_rate:
            names.append(Fault.URC_MID_ANSWER.value)
        if self.submit_crash is not None:
            names.append(Fault.SUBMIT_CRASH.value)
        return names
