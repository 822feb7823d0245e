"""The AT session state machine: pairs lines with the command in flight or classifies them as URCs.

Lines are classified by their prefix and the session state only (never by whether a caller is
waiting), then dispatched through `TRANSITIONS`, a table (state, line kind) -> (action, next state).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from modem.errors import SessionError

from .commands import Command
from .framer import Echo, Framer, Line, Prompt
from .params import is_hex, line_prefix
from .results import FinalResult, parse_final
from .urc import Urc, classify_urc, complete_two_line_urc, is_two_line_urc


class State(Enum):
    """Where the session is in a command exchange."""

    IDLE = auto()
    AWAITING_RESPONSE = auto()  # command written, collecting info lines until a final result
    AWAITING_PROMPT = auto()  # AT+CMGS written, waiting for "> "
    AWAITING_BODY = auto()  # prompt seen, the host has yet to write the PDU
    AWAITING_PDU_LINE = auto()  # +CMT/+CDS/+CBM header seen, its PDU line comes next


class Kind(Enum):
    """What a framed line is, given the state and the command in flight."""

    ECHO = auto()
    PROMPT = auto()
    FINAL = auto()
    INFO = auto()  # belongs to the command in flight
    URC = auto()
    URC_HEADER = auto()  # first line of a two-line URC
    PDU = auto()  # a hex line (second line of a two-line URC)
    OTHER = auto()


class Action(Enum):
    """What the session does with a line."""

    IGNORE = auto()
    COLLECT = auto()
    COMPLETE = auto()
    PROMPT = auto()
    EMIT_URC = auto()
    START_PDU_URC = auto()
    FINISH_PDU_URC = auto()
    PDU_MISSING = auto()  # the header was not followed by a PDU: emit it bare, re-dispatch line
    STALE_RESULT = auto()
    UNEXPECTED = auto()


# Next state RESUME returns to the state the two-line URC interrupted.
RESUME = None

_S = State
_K = Kind
_A = Action

_COMMON: dict[Kind, tuple[Action, State | None]] = {
    _K.ECHO: (_A.IGNORE, None),
    _K.URC: (_A.EMIT_URC, None),
    _K.URC_HEADER: (_A.START_PDU_URC, _S.AWAITING_PDU_LINE),
    _K.PDU: (_A.UNEXPECTED, None),
    _K.OTHER: (_A.UNEXPECTED, None),
}


def _row(
    state: State, **overrides: tuple[Action, State | None]
) -> dict[tuple[State, Kind], tuple[Action, State | None]]:
    row = dict(_COMMON)
    row.update({Kind[name]: value for name, value in overrides.items()})
    # None in a normal row means "stay".
    return {
        (state, kind): (action, state if nxt is None else nxt)
        for kind, (action, nxt) in row.items()
    }


TRANSITIONS: dict[tuple[State, Kind], tuple[Action, State | None]] = {
    **_row(
        _S.IDLE,
        PROMPT=(_A.UNEXPECTED, None),
        FINAL=(_A.STALE_RESULT, None),
        INFO=(_A.UNEXPECTED, None),
    ),
    **_row(
        _S.AWAITING_RESPONSE,
        PROMPT=(_A.UNEXPECTED, None),
        FINAL=(_A.COMPLETE, _S.IDLE),
        INFO=(_A.COLLECT, None),
    ),
    **_row(
        _S.AWAITING_PROMPT,
        PROMPT=(_A.PROMPT, _S.AWAITING_BODY),
        FINAL=(_A.COMPLETE, _S.IDLE),  # e.g. +CMS ERROR instead of a prompt
        INFO=(_A.COLLECT, None),
    ),
    **_row(
        _S.AWAITING_BODY,
        PROMPT=(_A.UNEXPECTED, None),
        FINAL=(_A.COMPLETE, _S.IDLE),
        INFO=(_A.COLLECT, None),
    ),
    **{
        (_S.AWAITING_PDU_LINE, kind): (_A.PDU_MISSING, RESUME)
        for kind in (_K.PROMPT, _K.FINAL, _K.INFO, _K.URC, _K.URC_HEADER, _K.OTHER)
    },
    (_S.AWAITING_PDU_LINE, _K.PDU): (_A.FINISH_PDU_URC, RESUME),
    (_S.AWAITING_PDU_LINE, _K.ECHO): (_A.IGNORE, _S.AWAITING_PDU_LINE),
}


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """A command finished: its information lines and final result code."""

    command: Command
    lines: tuple[str, ...]
    result: FinalResult

    @property
    def ok(self) -> bool:
        """True when the final result is `OK`."""
        return self.result.ok

    def raise_for_error(self) -> Response:
        """Raise the typed error for a failed command, else return self."""
        if not self.result.ok:
            raise self.result.error_for(self.command.text)
        return self


@dataclass(frozen=True, slots=True)
class PromptReady:
    """The `>` prompt arrived: call `Session.send_body()` now."""

    command: Command


@dataclass(frozen=True, slots=True)
class StaleResult:
    """A final result with no command in flight (late answer to an aborted command)."""

    result: FinalResult


@dataclass(frozen=True, slots=True)
class UnexpectedLine:
    """A line that is neither an answer to the command in flight nor a known URC."""

    text: str


Event = Response | PromptReady | StaleResult | UnexpectedLine | Urc


class Session:
    """Sans-I/O AT session: `send()` -> bytes to write; `receive_data()` + `next_event()`."""

    def __init__(self, framer: Framer | None = None) -> None:
        self._framer = framer or Framer()
        self._state = State.IDLE
        self._resume = State.IDLE
        self._command: Command | None = None
        self._lines: list[str] = []
        self._urc_header: str | None = None
        self._events: deque[Event] = deque()
        self.echoes = 0  # echo lines seen (echo back on mid-session hints at a reset)
        self._actions: dict[Action, Callable[[Kind, str], None]] = {
            Action.IGNORE: lambda _k, _t: None,
            Action.COLLECT: self._collect,
            Action.COMPLETE: self._complete,
            Action.PROMPT: self._prompt,
            Action.EMIT_URC: self._emit_urc,
            Action.START_PDU_URC: self._start_pdu_urc,
            Action.FINISH_PDU_URC: self._finish_pdu_urc,
            Action.PDU_MISSING: self._pdu_missing,
            Action.STALE_RESULT: self._stale,
            Action.UNEXPECTED: lambda _k, text: self._events.append(UnexpectedLine(text)),
        }

    @property
    def state(self) -> State:
        """Current state."""
        return self._state

    @property
    def command(self) -> Command | None:
        """The command in flight, if any."""
        return self._command

    @property
    def busy(self) -> bool:
        """True while a command is in flight."""
        return self._command is not None

    def send(self, command: Command) -> bytes:
        """Start `command`; returns the bytes to write. Only one command may be in flight."""
        if self._command is not None:
            raise SessionError(f"{self._command} is still in flight")
        self._command = command
        self._lines = []
        state = State.AWAITING_PROMPT if command.expects_prompt else State.AWAITING_RESPONSE
        self._set_state(state)
        self._framer.expect_echo(command.line)
        return command.encode()

    def send_body(self) -> bytes:
        """After `PromptReady`: the bytes of the body plus Ctrl-Z."""
        cmd = self._command
        in_body = self._state is State.AWAITING_BODY or (
            self._state is State.AWAITING_PDU_LINE and self._resume is State.AWAITING_BODY
        )
        if cmd is None or not in_body:
            raise SessionError("no prompt to answer")
        assert cmd.body is not None
        self._framer.expect_echo(cmd.body)
        if self._state is State.AWAITING_BODY:
            self._state = State.AWAITING_RESPONSE
        else:
            self._resume = State.AWAITING_RESPONSE
        return cmd.encode_body()

    def abort(self) -> bytes:
        """Forget the command in flight (timeout); returns ESC if a prompt may be open."""
        escape = self._state in (State.AWAITING_PROMPT, State.AWAITING_BODY) or (
            self._state is State.AWAITING_PDU_LINE
            and self._resume in (State.AWAITING_PROMPT, State.AWAITING_BODY)
        )
        self._command = None
        self._lines = []
        if self._state is State.AWAITING_PDU_LINE:
            self._resume = State.IDLE
        else:
            self._state = State.IDLE
        return b"\x1b" if escape else b""

    def partial_lines(self) -> tuple[str, ...]:
        """Information lines collected so far for the command in flight."""
        return tuple(self._lines)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the port."""
        self._framer.receive_data(data)

    def flush_input(self) -> None:
        """Discard unframed input (used after a resync)."""
        self._framer.clear()

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed."""
        while not self._events:
            frame = self._framer.next_event()
            if frame is None:
                return None
            self._dispatch_frame(frame)
        return self._events.popleft()

    # --- classification and dispatch --------------------------------------------------------

    def _dispatch_frame(self, frame: Line | Echo | Prompt) -> None:
        if isinstance(frame, Prompt):
            self._dispatch(Kind.PROMPT, ">")
        elif isinstance(frame, Echo):
            self.echoes += 1
            self._dispatch(Kind.ECHO, frame.text)
        else:
            self._dispatch(self.classify(frame.text), frame.text)

    def classify(self, text: str) -> Kind:
        """The kind of a line in the current state (prefix first, then state)."""
        if "\ufffd" in text:
            # Bytes that are not text (line noise, a garbled answer): never part of an answer.
            return Kind.OTHER
        if parse_final(text) is not None:
            return Kind.FINAL
        cmd = self._command
        waiting_pdu = self._state is State.AWAITING_PDU_LINE
        if cmd is not None and not waiting_pdu:
            prefix = line_prefix(text)
            if prefix is not None and prefix in cmd.prefixes:
                return Kind.INFO
        if is_two_line_urc(text):
            return Kind.URC_HEADER
        if classify_urc(text) is not None:
            return Kind.URC
        if waiting_pdu:
            return Kind.PDU if is_hex(text) or not line_prefix(text) else Kind.OTHER
        if cmd is not None:
            # Not a known URC: it belongs to the command in flight (identity strings, PDU lines
            # of +CMGL, odd prefixes such as ZTE's +BEARTYPE for AT+ZPAS?).
            return Kind.INFO
        return Kind.PDU if is_hex(text) else Kind.OTHER

    def _dispatch(self, kind: Kind, text: str) -> None:
        action, nxt = TRANSITIONS[(self._state, kind)]
        self._actions[action](kind, text)
        if action is Action.PDU_MISSING:
            return  # the line was re-dispatched in the resumed state
        if action is Action.COMPLETE:
            self._state = State.IDLE
        elif nxt is RESUME:
            self._state = self._resume
        else:
            self._set_state(nxt)

    def _set_state(self, state: State) -> None:
        if state is State.AWAITING_PDU_LINE and self._state is not State.AWAITING_PDU_LINE:
            self._resume = self._state
        self._state = state

    # --- actions ------------------------------------------------------------------------------

    def _stale(self, _kind: Kind, text: str) -> None:
        result = parse_final(text)
        assert result is not None
        self._events.append(StaleResult(result))

    def _collect(self, _kind: Kind, text: str) -> None:
        self._lines.append(text)

    def _complete(self, _kind: Kind, text: str) -> None:
        result = parse_final(text)
        assert result is not None and self._command is not None
        self._events.append(Response(self._command, tuple(self._lines), result))
        self._command = None
        self._lines = []

    def _prompt(self, _kind: Kind, _text: str) -> None:
        assert self._command is not None
        self._events.append(PromptReady(self._command))

    def _emit_urc(self, _kind: Kind, text: str) -> None:
        parser = classify_urc(text)
        assert parser is not None
        self._events.append(parser(text))

    def _start_pdu_urc(self, _kind: Kind, text: str) -> None:
        self._urc_header = text

    def _finish_pdu_urc(self, _kind: Kind, text: str) -> None:
        header = self._urc_header or ""
        self._urc_header = None
        self._events.append(complete_two_line_urc(header, text))

    def _pdu_missing(self, kind: Kind, text: str) -> None:
        header = self._urc_header or ""
        self._urc_header = None
        self._events.append(complete_two_line_urc(header, None))
        self._state = self._resume
        # Re-classify: in the resumed state the line may be a command's answer.
        if kind is Kind.PROMPT:
            self._dispatch(Kind.PROMPT, text)
        else:
            self._dispatch(self.classify(text), text)
