"""The console script is wired to the click group."""

from click.testing import CliRunner

from gateway.cli import main


def test_version_names_the_distribution() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "0.1.0" in result.output


def test_emulate_is_the_emulator_run_command() -> None:
    result = CliRunner().invoke(main, ["emulate", "--modems", "1", "--seed", "2"], input="quit\n")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert '"modems"' in first
    assert '"msisdn"' in first
