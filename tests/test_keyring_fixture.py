"""The test keyring itself works (so a keyring test that fails says something about us)."""

import os
import subprocess
import sys


def test_secret_service_stores_and_returns(keyring_env: dict[str, str]) -> None:
    code = (
        "import keyring; keyring.set_password('stigmer', 'X', 'y');"
        " print(keyring.get_password('stigmer', 'X'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **keyring_env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "y", result.stderr
