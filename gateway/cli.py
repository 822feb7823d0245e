"""The `smsgw` command line: a thin shell over the library."""

from __future__ import annotations

import click

from gateway.admin_cli import (
    db_group,
    inbox_command,
    modems_command,
    outbox_command,
    send_command,
    sims_group,
)
from gateway.appliance_cli import doctor_command, install_command
from gateway.daemon_cli import accounts_group, demo_command, serve_command
from gateway.emulator_cli import emulator, run_command
from gateway.modem_cli import modem_group
from gateway.pdu_cli import pdu


@click.group()
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
main.add_command(modem_group)
main.add_command(emulator)
# The issue names it `smsgw emulate`: the same command as `smsgw emulator run`.
main.add_command(run_command, name="emulate")
main.add_command(install_command)
main.add_command(doctor_command)

if __name__ == "__main__":
    main()
