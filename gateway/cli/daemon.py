"""`smsgw serve` and `smsgw demo`: thin shells over the daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.accounts import create_account, reset_credentials
from gateway.cli.common import config_option, data_directory, now, open_store
from gateway.config import Config, ConfigError, load
from gateway.daemon import Gateway, install_signal_handlers, serve
from gateway.ratelimit import LimitSettings
from gateway.service import GatewayService
from gateway.store import DaemonLock, Store
from gateway.store.base import sqlite_path
from gateway.teams import TeamBook

DEMO_PERSONALITIES = ("generic", "huawei", "sim800", "ec25", "sim7600", "wavecom", "zte")


def _settle_memory(_: Gateway) -> None:
    """Once serving: what the daemon built to start (modules, the app, phonenumbers' metadata)
    lives as long as it does. Frozen out of the collector's sight, a full collection walks only
    what the traffic made, instead of stopping the loop for ~50 ms under load."""
    gc.collect()
    gc.freeze()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _load(config_path: Path | None, data_dir: Path | None) -> Config:
    try:
        config = load(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    if not config.database_url:
        data_directory(config.data_dir)
    return config


@click.command("serve")
@config_option
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="SMSGW_DATA_DIR")
@click.option("--port", "ports", multiple=True, help="Extra modem port (path, PTY, socket://).")
def serve_command(config_path: Path, data_dir: Path | None, ports: tuple[str, ...]) -> None:
    """Run the gateway daemon (what the systemd unit starts)."""
    config = _load(config_path, data_dir)
    _setup_logging(config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await serve(config, stop=stop, ports=[(p, None) for p in ports], on_ready=_settle_memory)

    asyncio.run(main())


@click.command("demo")
@click.option("--modems", default=3, show_default=True, help="Emulated modems (1-64).")
@click.option("--port", "http_port", default=8080, show_default=True, help="HTTP port.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Default: a new temp dir.")
@click.option("--seed", default=1, show_default=True, help="Emulator seed (SIM identities).")
@click.option(
    "--control",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Socket for `smsgw emulator send SOCK LINE` (inject, fault, …)"
    " [beside the SQLite file: DATA_DIR/smsgw.sqlite3.control.sock].",
)
def demo_command(
    modems: int, http_port: int, data_dir: Path | None, seed: int, control: Path | None
) -> None:
    """Run the gateway on an emulated modem pool and network, with a demo account.

    The emulated network obeys `smsgw emulate`'s control lines on a socket, e.g. `smsgw emulator
    send SOCK inject 0 +15551230001 YES` (an SMS to modem 0: a reply); it prints SOCK."""
    from gateway.cli.emulator import ControlSocket
    from modem.emulator import EmulatorPool

    if not 1 <= modems <= 64:
        raise click.BadParameter("between 1 and 64", param_hint="--modems")
    data_dir = data_directory(data_dir or Path(tempfile.mkdtemp(prefix="smsgw-demo-")))
    # discover=(): the demo drives emulated modems only, never a real stick that is plugged in.
    # Request rates unlimited: the demo is what `make bench` measures the accept path on (one
    # client address, one account); wrong secrets still back off.
    config = Config(
        data_dir=data_dir, http_host="127.0.0.1", http_port=http_port, discover=(),
        limits=LimitSettings(account_rate=0, ip_rate=0),
    )  # fmt: skip
    _setup_logging("INFO")
    kinds = [DEMO_PERSONALITIES[i % len(DEMO_PERSONALITIES)] for i in range(modems)]
    # A fresh dashboard password each run, printed once (like the account's secrets), set
    # before the daemon starts so the HTTP front-end finds one.
    admin_password = secrets.token_urlsafe(9)
    # Refused before the password is reset under a demo already running on this data dir (the
    # daemon takes the lock itself below; this only spares the running one's password).
    DaemonLock.check(sqlite_path(data_dir))
    # The demo's own SQLite file, whatever the box's config names: its daemon runs on that.
    with open_store(data_dir, configured=False) as store:
        GatewayService(store, wall=now).set_admin_password(admin_password)
    control = control or _control_path(data_dir)
    with EmulatorPool(kinds, seed=seed, clock="real") as emulator:
        infos = emulator.info()

        def ready(gateway: Gateway) -> None:
            credentials = _demo_account(gateway.store)
            _print_demo(
                config,
                credentials,
                [(i.path, i.msisdn, i.personality) for i in infos],
                admin_password,
                control,
            )
            # Something in the inbox from the start: a text from the "outside world".
            emulator.inject_sms(infos[0].msisdn, "Welcome to smsgw! Reply STOP to opt out.",
                                sender="+15551230001")  # fmt: skip
            _settle_memory(gateway)

        def registered(gateway: Gateway) -> None:
            # One line, after the credentials: scripts wait for it instead of sleeping.
            n = len(gateway.workers)
            click.echo(f"ready: {n}/{n} modems registered")

        async def main() -> None:
            stop = asyncio.Event()
            install_signal_handlers(stop)
            loop = asyncio.get_running_loop()

            def quit_demo() -> None:  # `quit` on the socket, from its thread
                loop.call_soon_threadsafe(stop.set)

            # Open before the daemon starts: it is there by the time `ready:` is printed.
            with ControlSocket(emulator, str(control), quit_demo):
                await serve(
                    config,
                    stop=stop,
                    ports=[(i.path, None) for i in infos],
                    on_ready=ready,
                    on_modems_ready=registered,
                )

        asyncio.run(main())


DEMO_EMAIL = "demo@smsgw.local"
SUN_PATH_MAX = 107  # bytes of a Unix socket's path (sockaddr_un.sun_path, less its NUL)


def _control_path(data_dir: Path) -> Path:
    """The demo's control socket: beside its SQLite file, as the daemon lock is (so one demo per
    database owns it), or in a temp dir when that path is too long for a socket."""
    path = sqlite_path(data_dir.absolute())
    path = path.with_name(path.name + ".control.sock")
    if len(bytes(path)) <= SUN_PATH_MAX:
        return path
    return Path(tempfile.mkdtemp(prefix="smsgw-demo-")) / "control.sock"


def _demo_account(store: Store) -> dict[str, str]:
    existing = store.account_by_name("demo")
    if existing is not None:
        # Keys are stored hashed: a reused demo data dir gets a fresh key (and password).
        c = reset_credentials(store, existing["id"])
        account_id = int(existing["id"])
        if not existing["email"]:
            store.update_profile(account_id, {"email": DEMO_EMAIL})
    else:
        # Like any new account: unlimited, numbers with a leading 0 in the SIMs' country (+44).
        c = create_account(store, "demo", now=datetime.now(UTC), email=DEMO_EMAIL)
        account_id = c.account_id
    send_token = TeamBook(store, wall=lambda: datetime.now(UTC)).issue_send_token(account_id)
    return {
        "sub_account": "demo",
        "password": c.password,
        "api_key": c.api_key,
        "email": str((store.account(account_id) or {}).get("email", DEMO_EMAIL)),
        "token": c.token,
        "send_token": send_token,
    }


def _print_demo(
    config: Config,
    credentials: dict[str, str],
    modems: list[tuple[str, str, str]],
    admin_password: str,
    control: Path,
) -> None:
    base = f"http://{config.http_host}:{config.http_port}"
    key = credentials["api_key"]
    click.echo("\n=== smsgw demo ===")
    click.echo(f"data dir: {config.data_dir}")
    for path, msisdn, personality in modems:
        click.echo(f"emulated modem {personality:8} on {path}  SIM number {msisdn}")
    click.echo("demo account: " + json.dumps(credentials))
    click.echo(f"dashboard: {base}/  admin password: {admin_password}")
    click.echo(f"metrics: {base}/metrics  (terminal view: smsgw top --data-dir {config.data_dir})")
    click.echo(f"control: {control}  (smsgw emulator send {control} help: the control lines)")
    click.echo("\nTry (the magic number +15005550000 always reports 'delivered'):")
    click.echo(
        f"  curl -s -X POST {base}/v1/messages -H 'Authorization: Bearer {key}'"
        " -H 'Content-Type: application/json'"
        ' -d \'{"to": "+15005550000", "text": "Hello from smsgw 👋"}\''
    )
    click.echo(f"  curl -s {base}/v1/messages -H 'Authorization: Bearer {key}'")
    click.echo(f"  curl -s {base}/v1/inbox -H 'Authorization: Bearer {key}'")
    click.echo(f"  curl -s {base}/v1/sims -H 'Authorization: Bearer {key}'")
    click.echo(f"  curl -s {base}/v1/health   # 503 until every modem is registered, then 200")
    click.echo(
        f"  smsgw emulator send {control} inject 0 +15551230001 YES"
        f"   # an SMS to {modems[0][1]} (modem 0): a reply to the inbox and its webhook"
    )
    if "password" in credentials:  # the provider-compatible APIs (README: Compatibility)
        click.echo(
            f"  curl -s '{base}/api_v1?sub_account=demo"
            f"&sub_account_pass={credentials['password']}&action=account_info'"
        )
        click.echo(f"  curl -s '{base}/apis/getcreditbalance/?apikey={key}&type=1'")
        click.echo(
            f"  curl -s -X POST {base}/api/campaign -u 'demo:{credentials['password']}'"
            " -H 'Content-Type: application/json'"
            ' -d \'{"Message": "Hello", "Destinations": ["15005550000"], "Action": "create"}\''
        )
    if "email" in credentials:  # Zoom Connect REST (README: Compatibility)
        zoom = f"{base}/app/api/rest/v1"
        auth = f"-H 'email: {credentials['email']}' -H 'token: {credentials['token']}'"
        click.echo(f"  curl -s {zoom}/account/balance {auth}")
        click.echo(
            f"  curl -s -X POST {zoom}/sms/send {auth} -H 'Content-Type: application/json'"
            ' -d \'{"recipientNumber": "+15005550000", "message": "Hello from smsgw"}\''
        )
    click.echo("Ctrl-C stops the demo.\n")
