"""The `smsgw` command line: a thin shell over the library."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="smsgw")
def main() -> None:
    """SMS gateway appliance for USB GSM modem pools."""


if __name__ == "__main__":
    main()
