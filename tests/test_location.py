"""The suite does not depend on where the checkout lives or what the shell running it exports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_exported_data_dir_does_not_reach_the_tests(tmp_path: Path) -> None:
    # Reads the config defaults and installs to a fake root: both honour SMSGW_DATA_DIR.
    tests = [
        "tests/appliance/test_install.py::"
        "test_config_template_has_the_keys_config_reads_with_their_defaults",
        "tests/appliance/test_doctor.py::test_healthy_appliance_has_no_problems",
    ]
    env = {**os.environ, "SMSGW_DATA_DIR": str(tmp_path / "the-operators-data-dir")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert not (tmp_path / "the-operators-data-dir").exists()
