"""A real Secret Service for the tests: gnome-keyring under dbus-run-session, on a
private bus and a private keyring folder, so no test touches the user's keyring."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKEND = "keyring.backends.SecretService.Keyring"
_PROBE = (
    "import keyring; keyring.set_password('stigmer-probe', 'p', 'v');"
    "assert keyring.get_password('stigmer-probe', 'p') == 'v'"
)


def _missing_tools() -> list[str]:
    return [t for t in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(t) is None]


@contextlib.contextmanager
def secret_service(root: Path) -> Iterator[dict[str, str]]:
    """Yields the variables that point a process at the test keyring."""
    missing = _missing_tools()
    if missing:
        reason = (
            f"no Secret Service here ({', '.join(missing)} missing:"
            " apt-get install gnome-keyring dbus)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the keyring tests, but {reason}")
        pytest.skip(reason)
    address_file = root / "bus-address"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_RUNTIME_DIR": str(root / "run"),
    }
    (root / "run").mkdir(mode=0o700)
    script = (
        'echo "$DBUS_SESSION_BUS_ADDRESS" > "$0";'
        " exec gnome-keyring-daemon --unlock --foreground --components=secrets"
    )
    with open(root / "keyring.log", "wb") as log:
        process = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script, str(address_file)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    try:
        assert process.stdin is not None
        process.stdin.write(b"test-keyring-password")
        process.stdin.close()
        variables = _wait_ready(address_file, process, root)
        yield variables
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(address_file: Path, process: subprocess.Popen[bytes], root: Path) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        address = address_file.read_text().strip() if address_file.exists() else ""
        if address:
            variables = {"DBUS_SESSION_BUS_ADDRESS": address, "PYTHON_KEYRING_BACKEND": BACKEND}
            probe = subprocess.run(
                [sys.executable, "-c", _PROBE],
                env={**os.environ, **variables},
                capture_output=True,
                timeout=20,
            )
            if probe.returncode == 0:
                return variables
        time.sleep(0.05)
    log = (root / "keyring.log").read_text(errors="replace")
    raise AssertionError(f"the test Secret Service did not come up:\n{log}")
