"""Inbound messages: STOP-style opt-outs, START-style opt-ins and HELP keywords."""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    """What an inbound message asks of the gateway."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


_KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), Keyword.OPT_OUT),
    **dict.fromkeys(("START", "UNSTOP"), Keyword.OPT_IN),
    "HELP": Keyword.HELP,
}


def classify(body: str) -> Keyword | None:
    """Return the keyword an inbound body consists of, if any (" stop. " counts, "stop it" not)."""
    word = body.strip().strip(".!").strip().upper()
    return _KEYWORDS.get(word)
