"""The `smsgw` command line: one thin module per command group, over the library."""

from __future__ import annotations

import click

from gateway.cli.accounts import accounts_group
from gateway.cli.admin import admin_group
from gateway.cli.appliance import doctor_command, install_command
from gateway.cli.contacts import contacts_group
from gateway.cli.daemon import demo_command, serve_command
from gateway.cli.db import db_group
from gateway.cli.emulator import emulator, run_command
from gateway.cli.messages import inbox_command, outbox_command, send_command
from gateway.cli.modem import modem_group
from gateway.cli.pdu import pdu
from gateway.cli.sims import modems_command, sims_group
from gateway.cli.templates import templates_group
from gateway.cli.top import top_command
from gateway.cli.webhooks import webhooks_group
from gateway.leases import EXIT_BOX_TAKEN, BoxInUseError, BoxTakenError
from gateway.store import StoreOpenError


class _BoxTaken(click.ClickException):
    """One `Error:` line and its own exit status: the unit does not restart into the same
    clash (RestartPreventExitStatus=, see gateway.leases)."""

    exit_code = EXIT_BOX_TAKEN


class _Main(click.Group):
    """The `smsgw` group: a database that cannot be opened (or a box_id another running daemon
    has, or took from this one) is one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StoreOpenError as exc:
            raise click.ClickException(str(exc)) from exc
        except (BoxInUseError, BoxTakenError) as exc:
            # Refused at start or deposed later: either way another live daemon renews this
            # box_id, and a restart by the unit would only be refused again.
            raise _BoxTaken(str(exc)) from exc


@click.group(cls=_Main)
@click.version_option(package_name="smsgw")
def main() -> None:
    """SMS gateway appliance for USB GSM modem pools."""


main.add_command(pdu)
main.add_command(send_command)
main.add_command(outbox_command)
main.add_command(inbox_command)
main.add_command(sims_group)
main.add_command(modems_command)
main.add_command(db_group)
main.add_command(serve_command)
main.add_command(demo_command)
main.add_command(accounts_group)
main.add_command(admin_group)
main.add_command(top_command)
main.add_command(templates_group)
main.add_command(contacts_group)
main.add_command(modem_group)
main.add_command(webhooks_group)
main.add_command(emulator)
# The issue names it `smsgw emulate`: the same command as `smsgw emulator run`.
main.add_command(run_command, name="emulate")
main.add_command(install_command)
main.add_command(doctor_command)

if __name__ == "__main__":
    main()
