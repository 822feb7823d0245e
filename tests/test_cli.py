"""The console script is wired to the click group."""

from click.testing import CliRunner

from gateway.cli import main


def test_version_names_the_distribution() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "0.1.0" in result.output
