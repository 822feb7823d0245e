"""Errors that end an AT command line, as the emulated modem reports them."""

from __future__ import annotations

# TS 27.007 9.2 +CME ERROR texts used with AT+CMEE=2.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    16: "incorrect password",
    21: "invalid index",
    24: "text string too long",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
    515: "please wait, init or command processing in progress",
}


class AtError(Exception):
    """Base for errors that end a command line."""


class CmeError(AtError):
    """+CME ERROR: <code> (TS 27.007 9.2)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class CmsError(AtError):
    """+CMS ERROR: <code> (TS 27.005 3.2.5)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PlainError(AtError):
    """A bare ERROR whatever +CMEE says (unknown command, SMS not ready)."""


class UnsupportedError(AtError):
    """An unknown command: the personality's final code (ERROR / COMMAND NOT SUPPORT)."""
