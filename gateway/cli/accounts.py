"""`smsgw accounts`: sub-accounts, their credentials, credits, the SIMs they may send from and
their webhook URLs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.accounts import box_dial_code, create_account
from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.daemon import load_frontends
from gateway.models import WebhookKind
from gateway.service import GatewayService, ServiceError
from gateway.store import Store
from gateway.teams import TeamBook
from gateway.webhooks import format_names, signature_scheme


@click.group("accounts")
def accounts_group() -> None:
    """Manage sub-accounts."""


@accounts_group.command("create")
@click.argument("name")
@data_dir_option
@click.option("--email", default="")
@click.option(
    "--credits", type=click.IntRange(0), default=None, help="Limit it to N credits [unlimited]."
)
@click.option("--unlimited", is_flag=True, help="Unlimited even with --credits (the default).")
@click.option(
    "--dial-code",
    default=None,
    help="Country code a number with a leading 0 takes [the country of the box's SIMs].",
)
def accounts_create(  # noqa: PLR0917 - one parameter per click option
    name: str,
    data_dir: Path,
    email: str,
    credits: int | None,
    unlimited: bool,
    dial_code: str | None,
) -> None:
    """Create a sub-account, ready to send, and print its credentials (shown once) as JSON.

    With --email, the account can also use the Zoom Connect API (email + token)."""
    with open_store(data_dir) as store:
        if store.account_by_name(name) is not None:
            raise click.ClickException(f"account {name!r} exists (smsgw accounts list)")
        if email and store.accounts_by_email(email):
            raise click.ClickException(f"another account already has the email {email!r}")
        try:
            c = create_account(
                store, name, now=now(), email=email, credits=credits, unlimited=unlimited,
                default_dial_code=dial_code,
            )  # fmt: skip
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dial-code") from None
    if not c.default_dial_code:
        click.echo(
            "note: no SIM tells the box's country yet; a number with a leading 0 will take the"
            " country of the account's SIMs when it is sent (refused while none is known),"
            " or set one with --dial-code",
            err=True,
        )
    click.echo(
        json.dumps(
            {
                "sub_account": c.sub_account,
                "password": c.password,
                "api_key": c.api_key,
                "email": c.email,
                "token": c.token,
                "unlimited": c.unlimited,
                "credits": c.credits,
                "default_dial_code": c.default_dial_code or None,
            }
        )
    )


@accounts_group.command("list")
@data_dir_option
@json_option
def accounts_list(data_dir: Path, as_json: bool) -> None:
    """Every sub-account (no secrets), its dial code and the SIMs it may send from."""
    with open_store(data_dir) as store:
        granted = store.granted_iccids()
        rows = []
        for row in store.list_accounts():
            rows.append(
                {
                    **row,
                    "unlimited": bool(row["unlimited"]),
                    "api_enabled": bool(row["api_enabled"]),
                    # what a leading 0 takes now: its own, else its SIMs' country
                    "dial_code": row["default_dial_code"] or box_dial_code(store, row["id"]),
                    "sims": granted.get(row["id"], []),  # empty: every SIM
                }
            )
    if as_json:
        show(rows, [], as_json, "accounts")
        return
    for row in rows:
        row["credits"] = "unlimited" if row["unlimited"] else row["credits"]
        row["sims"] = ",".join(row["sims"]) or "all"
        if not row["dial_code"]:
            row["dial_code"] = "none"
        elif not row["default_dial_code"]:
            row["dial_code"] += " (SIMs)"
    show(rows, ["id", "sub_account", "email", "credits", "dial_code", "sims", "api_enabled"],
         as_json, "accounts")  # fmt: skip


@accounts_group.command("credits")
@data_dir_option
@click.argument("name")
@click.option("--add", "delta", type=int, default=0, help="Top up (negative: take back).")
def accounts_credits(data_dir: Path, name: str, delta: int) -> None:
    """Show or change an account's credit balance (recorded in the ledger)."""
    with open_store(data_dir) as store:
        account = account_id(store, name)
        if delta:
            balance = store.add_credits(account, delta, "manual top-up", now=now())
        else:
            balance = int((store.account(account) or {}).get("credits", 0))
    click.echo(json.dumps({"sub_account": name, "credits": balance}))


def _sim_ids(store: Store, iccids: tuple[str, ...]) -> dict[str, int]:
    found = {iccid: store.sim_by_iccid(iccid) for iccid in iccids}
    unknown = [iccid for iccid, sim in found.items() if sim is None]
    if unknown:
        raise click.ClickException(
            f"no SIM with ICCID {', '.join(unknown)} (smsgw sims list); nothing changed"
        )
    return {iccid: int(sim["id"]) for iccid, sim in found.items() if sim is not None}


def _grants(store: Store, name: str, account: int) -> str:
    return json.dumps({"sub_account": name, "sims": store.granted_iccids().get(account, [])})


@accounts_group.command("grant")
@data_dir_option
@click.argument("name")
@click.argument("iccids", nargs=-1, required=True)
def accounts_grant(data_dir: Path, name: str, iccids: tuple[str, ...]) -> None:
    """Let account NAME send from these SIMs (by ICCID). An account with no SIM granted may
    send from every SIM; once one is granted, it sends from its granted SIMs only."""
    with open_store(data_dir) as store:
        account = account_id(store, name)
        for sim_id in _sim_ids(store, iccids).values():
            store.grant_sim(account, sim_id)
        click.echo(_grants(store, name, account))


@accounts_group.command("revoke")
@data_dir_option
@click.argument("name")
@click.argument("iccids", nargs=-1, required=True)
@click.option(
    "--allow-all",
    is_flag=True,
    help="Revoke the last granted SIM too, which lets the account use every SIM again.",
)
def accounts_revoke(data_dir: Path, name: str, iccids: tuple[str, ...], allow_all: bool) -> None:
    """Stop account NAME sending from these SIMs; its queued messages from one of them wait
    until it is granted again (or are cancelled)."""
    with open_store(data_dir) as store:
        account = account_id(store, name)
        sims = _sim_ids(store, iccids)
        granted = store.sims_of_account(account)
        not_granted = [iccid for iccid, sim_id in sims.items() if sim_id not in granted]
        if granted and set(granted) <= set(sims.values()) and not allow_all:
            # An account without grants may use every SIM: taking the last one away would
            # widen what it may use, not narrow it.
            raise click.ClickException(
                f"that is every SIM granted to {name}; with none granted it may send from"
                " every SIM: add --allow-all to mean that; nothing changed"
            )
        for sim_id in sims.values():
            store.revoke_sim(account, sim_id)
        for iccid in not_granted:
            click.echo(f"note: SIM {iccid} was not granted to {name}", err=True)
        if not store.sims_of_account(account):
            click.echo(f"note: {name} has no SIM granted, so it may use every SIM", err=True)
        click.echo(_grants(store, name, account))


@accounts_group.command("webhooks")
@data_dir_option
@click.argument("name")
@click.option("--on-reply", metavar="URL", help="Where inbound messages (replies) are POSTed.")
@click.option("--on-status", metavar="URL", help="Where status changes and reports are POSTed.")
@click.option(
    "--remove",
    "remove",
    multiple=True,
    type=click.Choice([k.value for k in WebhookKind]),
    help="Stop sending this kind (repeatable).",
)
@click.option("--rotate-secret", is_flag=True, help="New signing secret (receivers must update).")
@click.option(
    "--format",
    "fmt",
    metavar="NAME",
    help="Payload format of the URLs set: v1 (ours), or a provider dialect's (zoomconnect,"
    " smseveryone)"
    " [the subscription's own; v1 for a new one].",
)
def accounts_webhooks(  # noqa: PLR0917 - one parameter per click option
    data_dir: Path,
    name: str,
    on_reply: str | None,
    on_status: str | None,
    remove: tuple[str, ...],
    rotate_secret: bool,
    fmt: str | None,
) -> None:
    """Show or set an account's webhook URLs; prints them, the signing secret and how to check
    a signature (as GET /v1/webhooks does) as JSON."""
    if fmt is not None and fmt not in format_names():
        load_frontends()  # the API dialects register their formats when they are imported
    urls: dict[WebhookKind | str, str | None] = {kind: None for kind in remove}
    for kind, url in ((WebhookKind.REPLY, on_reply), (WebhookKind.STATUS, on_status)):
        if url is not None:
            if kind in urls:
                raise click.UsageError(f"--on-{kind} and --remove {kind} together")
            urls[kind] = url
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, name)
        try:
            service.set_webhooks(account, urls, format=fmt)
            if rotate_secret:
                service.rotate_webhook_secret(account)
            subscriptions = service.webhooks(account)
            secret = service.webhook_secret(account)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    view = {
        kind.value: {"url": sub.url, "format": sub.format} if sub is not None else None
        for kind in WebhookKind
        for sub in [subscriptions.get(kind)]
    }
    click.echo(
        json.dumps(
            {"sub_account": name, "webhooks": view, "secret": secret,
             "signature": signature_scheme()}
        )
    )  # fmt: skip


@accounts_group.command("token")
@data_dir_option
@click.argument("name")
def accounts_token(data_dir: Path, name: str) -> None:
    """Issue a new REST token (Zoom Connect `token`); the old one stops working."""
    with open_store(data_dir) as store:
        token = TeamBook(store, wall=now).issue_token(account_id(store, name))
    click.echo(json.dumps({"sub_account": name, "token": token}))


@accounts_group.command("send-token")
@data_dir_option
@click.argument("name")
def accounts_send_token(data_dir: Path, name: str) -> None:
    """Issue a new URL-sending token (Zoom Connect sms/send-url/{token}); it may only send."""
    with open_store(data_dir) as store:
        token = TeamBook(store, wall=now).issue_send_token(account_id(store, name))
    click.echo(json.dumps({"sub_account": name, "send_token": token}))


@accounts_group.command("policy")
@data_dir_option
@click.argument("name")
@click.option("--unicode/--no-unicode", default=None, help="May send UCS-2 (non-GSM) texts.")
@click.option("--long/--no-long", "long_texts", default=None, help="May send multi-part texts.")
@click.option("--international/--no-international", default=None,
              help="May send outside its default dial code's country.")  # fmt: skip
@click.option("--topup/--no-topup", default=None, help="May top itself up through an API.")
def accounts_policy(  # noqa: PLR0917 - one parameter per click option
    data_dir: Path,
    name: str,
    unicode: bool | None,
    long_texts: bool | None,
    international: bool | None,
    topup: bool | None,
) -> None:
    """Show or change what an account may send (SMS Everyone's RetrieveUserSettings)."""
    flags = {
        "allow_unicode": unicode,
        "allow_long": long_texts,
        "allow_international": international,
        "allow_topup": topup,
    }
    with open_store(data_dir) as store:
        account = account_id(store, name)
        store.set_account_policy(account, {k: v for k, v in flags.items() if v is not None})
        row = store.account(account) or {}
    click.echo(json.dumps({"sub_account": name, **{k: bool(row.get(k)) for k in flags}}))
