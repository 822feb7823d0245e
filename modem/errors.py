"""Typed errors raised by the AT layer and the modem client."""

from __future__ import annotations


class ModemError(Exception):
    """Base class of every error the modem layer raises."""


class AtParseError(ModemError, ValueError):
    """A modem answer that cannot be parsed into the expected shape."""

    def __init__(self, message: str, line: str | None = None) -> None:
        super().__init__(message if line is None else f"{message}: {line!r}")
        self.line = line


class SessionError(ModemError, RuntimeError):
    """The AT session was asked to do something its state does not allow."""


class CommandError(ModemError):
    """The modem answered a command with a failure result code."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"AT{command} failed: {result}")
        self.command = command
        self.result = result


class CmeError(CommandError):
    """`+CME ERROR` (TS 27.007 9.2): equipment / SIM / network failure."""

    def __init__(self, command: str, code: int | None, text: str = "") -> None:
        label = str(code) if code is not None else (text or "no code")
        super().__init__(command, f"+CME ERROR: {label}")
        self.code = code
        self.text = text


class CmsError(CommandError):
    """`+CMS ERROR` (TS 27.005 3.2.5): SMS service failure."""

    def __init__(self, command: str, code: int | None) -> None:
        super().__init__(command, f"+CMS ERROR: {code if code is not None else 'no code'}")
        self.code = code


class ModemTimeout(ModemError, TimeoutError):  # noqa: N818 - name from the issue
    """A named wait on the modem ran out of time."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g}s waiting for {what}")
        self.what = what
        self.seconds = seconds


class ModemDesync(ModemError):  # noqa: N818 - reads like its siblings
    """An answer belonged to another command (a late answer): the session must resync."""

    def __init__(self, command: str) -> None:
        super().__init__(f"the answer to {command} belongs to an earlier command")
        self.command = command


class ModemRestarted(ModemError):  # noqa: N818 - reads like its siblings
    """The modem restarted while a command was in flight: its answer will never come."""

    def __init__(self, command: str, line: str) -> None:
        super().__init__(f"the modem restarted ({line.strip()}) during {command}")
        self.command = command
        self.line = line


class ModemGone(ModemError):  # noqa: N818 - name from the issue
    """The modem stopped answering or its port vanished; the supervisor must reopen it."""


class SimLockedError(ModemError):
    """The SIM needs a PIN/PUK the client may not (or may no longer) supply."""

    def __init__(self, state: str) -> None:
        super().__init__(f"SIM is locked ({state})")
        self.state = state
