"""The committed generated code matches protos/*.proto."""

import subprocess

from tests.support import REPO


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        ["make", "-s", "protos-check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "protos up to date" in result.stdout
