"""`smsgw emulator`: run a pool of emulated modems and drive it with a small line protocol.

`smsgw emulator run --modems 4 --personality huawei --seed 7` prints one JSON document (the
modems: PTY path, MSISDN, IMSI, ICCID, IMEI, personality) and keeps running until SIGINT/SIGTERM,
`quit` or `--duration` seconds; it then exits 0 with its PTYs closed. Control lines are read from
stdin (EOF only ends them, so `&`, nohup and systemd work) and, with `--control PATH`, from a Unix
socket (`smsgw emulator send PATH LINE` talks to it; `smsgw demo` has one too). Every line gets
exactly one JSON line back: {"ok": true, ...} or {"ok": false, "error": "..."}.

Control lines (MODEM is an index or an MSISDN; text runs to the end of the line):
  info                                 modems and their current PTY paths
  inject MODEM SENDER TEXT...          SMS from the outside world (SENDER: +number or name)
  fault MODEM NAME [key=value ...]     e.g. "fault 0 cms_error code=42 rate=0.5",
                                       "fault 1 slow_radio seconds=3", "fault 2 unplug seconds=5"
  clear MODEM NAME                     switch a fault off
  urc MODEM WHERE LINE...              WHERE: now | answer | cmgs
  garbage MODEM HEX                    raw bytes on the modem's line
  outside                              what was sent to numbers outside the emulated network
  stats                                network counters
  help / quit
A line starting with "{" is JSON: {"cmd": "inject", "to": 0, "sender": "MyBank", "text": "..",
"ref16": true, "order": [1, 0], "message_class": 0} (keys as the Python API takes them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType, TracebackType
from typing import Any

import click

from modem.emulator import PERSONALITIES, EmulatorPool, Fault

Reply = dict[str, Any]


def _modem_index(pool: EmulatorPool, ref: object) -> int:
    if isinstance(ref, int):
        index = ref
    elif isinstance(ref, str) and ref.isdigit():
        index = int(ref)
    else:
        infos = pool.info()
        matches = [i.index for i in infos if i.msisdn == ref]
        if not matches:
            raise ValueError(f"no modem {ref!r} (give an index or an MSISDN)")
        index = matches[0]
    if not 0 <= index < len(pool.modems):
        raise ValueError(f"modem index {index} out of range 0..{len(pool.modems) - 1}")
    return index


def _value(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _info(pool: EmulatorPool) -> Reply:
    return {"ok": True, "modems": [asdict(i) for i in pool.info()]}


def _outside(pool: EmulatorPool) -> Reply:
    from modem.pdu import PduError, decode_pdu

    messages = []
    for out in pool.outside():
        entry: dict[str, Any] = {
            "sender": out.sender,
            "destination": out.destination,
            "message_reference": out.message_reference,
            "tpdu": out.tpdu.hex().upper(),
        }
        try:
            ud = decode_pdu(out.tpdu, smsc_included=False).tpdu.user_data
            entry["text"] = None if ud is None else ud.text
        except PduError as exc:
            entry["error"] = str(exc)
        messages.append(entry)
    return {"ok": True, "messages": messages}


def _json_command(pool: EmulatorPool, request: dict[str, Any]) -> Reply:
    cmd = request.pop("cmd", None)
    if cmd == "inject":
        index = _modem_index(pool, request.pop("to"))
        msisdn = pool.info()[index].msisdn
        text = request.pop("text", None)
        sender = request.pop("sender", "+4915112345678")
        data = request.pop("data_hex", None)
        parts = pool.inject_sms(
            msisdn, text, sender, data=None if data is None else bytes.fromhex(data), **request
        )
        return {"ok": True, "parts": parts}
    if cmd == "fault":
        index = _modem_index(pool, request.pop("modem"))
        pool.set_fault(index, Fault(request.pop("name")), **request)
        return {"ok": True, "modems": [asdict(i) for i in pool.info()]}
    raise ValueError(f"unknown JSON command {cmd!r}")


def _control_help() -> str:
    """The control-line list of this module's docstring (what `help` answers)."""
    # From its heading: the docstring's first paragraph also says "Control lines are read…".
    start = (__doc__ or "").index("Control lines (")
    return (__doc__ or "")[start:].strip()


def handle(pool: EmulatorPool, line: str) -> Reply:
    """Run one control line against the pool; never raises (errors become JSON)."""
    try:
        line = line.strip()
        if not line:
            return {"ok": True}
        if line.startswith("{"):
            return _json_command(pool, json.loads(line))
        verb, _, rest = line.partition(" ")
        verb = verb.lower()
        if verb == "info":
            return _info(pool)
        if verb == "stats":
            return {"ok": True, "stats": asdict(pool.stats())}
        if verb == "outside":
            return _outside(pool)
        if verb == "help":
            return {"ok": True, "help": _control_help()}
        if verb == "inject":
            ref, sender, text = rest.split(" ", 2)
            msisdn = pool.info()[_modem_index(pool, ref)].msisdn
            return {"ok": True, "parts": pool.inject_sms(msisdn, text, sender)}
        if verb in ("fault", "clear"):
            args = shlex.split(rest)
            index, fault = _modem_index(pool, args[0]), Fault(args[1])
            if verb == "clear":
                pool.clear_fault(index, fault)
            else:
                params = dict(arg.split("=", 1) for arg in args[2:])
                pool.set_fault(index, fault, **{k: _value(v) for k, v in params.items()})
            return _info(pool)
        if verb == "urc":
            ref, where, urc = rest.split(" ", 2)
            pool.inject_urc(_modem_index(pool, ref), urc, where)
            return {"ok": True}
        if verb == "garbage":
            ref, hexdata = rest.split(" ", 1)
            pool.inject_garbage(_modem_index(pool, ref), bytes.fromhex(hexdata.replace(" ", "")))
            return {"ok": True}
        if verb == "quit":
            return {"ok": True, "bye": True}
        raise ValueError(f"unknown command {verb!r} (try: help)")
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


class _Stopper:
    """Wakes the main thread for SIGINT/SIGTERM or a `quit` from any thread, through one pipe."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)  # set_wakeup_fd needs it; if full, a wake-up is pending
        self._old_wakeup = -1
        self._old_handlers: dict[signal.Signals, Any] = {}

    def fileno(self) -> int:
        """Readable once a stop was asked for."""
        return self._read

    def stop(self) -> None:
        """Ask the main thread to stop (safe from any thread)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"q")

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            # The C-level handler writes the signal number to the pipe; the Python handler does
            # nothing, so no lock is ever taken inside a signal handler.
            self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, _wake_only)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        if self._old_handlers:
            signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._read)
        os.close(self._write)


def _wake_only(signum: int, frame: FrameType | None) -> None:
    """The wakeup fd has the signal already; SIGINT must not become KeyboardInterrupt."""


def _stdin_fd() -> int | None:
    """stdin's descriptor, or None when it has none (closed, or in memory as in CliRunner)."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None


def _reply(pool: EmulatorPool, line: str) -> bool:
    """Answer one control line on stdout; True if it was `quit`."""
    reply = handle(pool, line)
    click.echo(json.dumps(reply))
    sys.stdout.flush()
    return bool(reply.get("bye"))


def _serve(pool: EmulatorPool, stopper: _Stopper, duration: float | None) -> None:
    """Obey stdin until `quit`, a stop or `duration` seconds; EOF only ends the control lines."""
    deadline = None if duration is None else time.monotonic() + duration
    fd = _stdin_fd()
    if fd is None and sys.stdin is not None:
        for line in sys.stdin:  # in memory: never blocks, so read it all before waiting
            if _reply(pool, line):
                return
    pending = b""
    while True:
        # select, not a reader thread: a daemon thread blocked in sys.stdin can abort shutdown.
        watched = [stopper.fileno()] if fd is None else [stopper.fileno(), fd]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(watched, [], [], timeout)
        if not ready or stopper.fileno() in ready:
            return
        assert fd is not None
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""  # EIO from a terminal that went away: as good as EOF
        if data:
            *lines, pending = (pending + data).split(b"\n")
        else:
            fd, lines, pending = None, [pending] if pending else [], b""
        for raw in lines:
            if _reply(pool, raw.decode("utf-8", "replace")):
                return


class ControlSocket:
    """A Unix socket at `path` answering control lines for `pool` on its own thread, one JSON
    line each; a `quit` calls `on_quit` (from that thread). `smsgw emulator send` talks to it."""

    def __init__(self, pool: EmulatorPool, path: str, on_quit: Callable[[], None]) -> None:
        self.pool, self.path, self.on_quit = pool, path, on_quit
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._thread = threading.Thread(target=self._serve, name="smsgw-control", daemon=True)

    def __enter__(self) -> ControlSocket:
        if os.path.exists(self.path):
            os.unlink(self.path)  # a socket a previous run left behind
        self._server.bind(self.path)
        self._server.listen(4)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept()
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed: the command is stopping
            try:
                with conn, conn.makefile("rw", encoding="utf-8") as stream:
                    for line in stream:
                        reply = handle(self.pool, line)
                        stream.write(json.dumps(reply) + "\n")
                        stream.flush()
                        if reply.get("bye"):
                            self.on_quit()
                            return
            except OSError:
                continue  # the client went away mid-line; the next one may connect


@click.group(name="emulator")
def emulator() -> None:
    """Emulated modems on PTYs and an emulated GSM network (no hardware needed)."""


@emulator.command(name="run")
@click.option("--modems", "count", type=click.IntRange(0, 899), default=2, show_default=True)
@click.option(
    "--personality",
    "personalities",
    multiple=True,
    type=click.Choice(sorted(PERSONALITIES)),
    help="Personality per modem, repeated; the last one fills the rest.",
)
@click.option("--seed", default="0", show_default=True, help="Same seed, same SIMs and faults.")
@click.option("--report-delay", type=float, default=1.0, show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True)
@click.option("--pin/--no-pin", default=False, help="SIMs start PIN-locked.")
@click.option("--control", type=click.Path(dir_okay=False), help="Also listen on this socket.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    help="Stop after this many wall-clock seconds (default: run until SIGINT/SIGTERM or quit).",
)
def run_command(
    *,
    count: int,
    personalities: tuple[str, ...],
    seed: str,
    report_delay: float,
    time_scale: float,
    pin: bool,
    control: str | None,
    duration: float | None,
) -> None:
    """Start N emulated modems, print them as JSON, obey control lines until stopped.

    Control lines come on stdin (and on --control's socket, for `smsgw emulator send`), e.g.
    `inject 0 +447700900123 Hello` (an SMS to modem 0 from that number), `fault 1 unplug
    seconds=5`, `info`, `stats`, `quit`; `help` lists them all. Each gets one JSON line back.
    """
    chosen = list(personalities) or ["generic"]
    kinds = [chosen[min(i, len(chosen) - 1)] for i in range(count)]
    seed_value: int | str = int(seed) if seed.lstrip("-").isdigit() else seed
    with (
        _Stopper() as stopper,
        EmulatorPool(
            kinds,
            seed=seed_value,
            clock="real",
            time_scale=time_scale,
            report_delay=report_delay,
            pin_enabled=pin,
            max_modems=max(count, 1),
        ) as pool,
        ControlSocket(pool, control, stopper.stop) if control else contextlib.nullcontext(),
    ):
        document = _info(pool)
        document.update(seed=seed_value, smsc=pool.network.smsc, control=control)
        click.echo(json.dumps(document), nl=True)
        sys.stdout.flush()
        _serve(pool, stopper, duration)


@emulator.command(name="send")
@click.argument("control", type=click.Path(exists=True, dir_okay=False))
@click.argument("line", nargs=-1, required=True)
def send_command(control: str, line: tuple[str, ...]) -> None:
    """Send one control line to a running `emulator run --control PATH`; print the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(control)
        with sock.makefile("rw", encoding="utf-8") as stream:
            stream.write(" ".join(line) + "\n")
            stream.flush()
            reply = stream.readline()
    click.echo(reply.rstrip("\n"))
    if not json.loads(reply).get("ok"):
        raise SystemExit(1)


@emulator.command(name="personalities")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of lines.")
def personalities_command(as_json: bool) -> None:
    """List the vendor personalities and the transcripts each one models."""
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "manufacturer": p.manufacturer.strip(),
                        "model": p.model.strip(),
                        "transcripts": list(p.transcripts),
                    }
                    for p in PERSONALITIES.values()
                ]
            )
        )
        return
    for p in PERSONALITIES.values():
        claims = ", ".join(p.transcripts) or "-"
        click.echo(f"{p.name:10} {p.manufacturer.strip()} {p.model.strip()}  [{claims}]")
