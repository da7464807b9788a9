from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.keyring_service import secret_service
from tests.support import Daemon, write_config


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    # TCP stays off so parallel daemons never fight over a port. No key is
    # required: these daemons start without a terminal to ask for one.
    write_config(
        path, '[daemon]\ntcp_address = ""\n[runners]\ncount = 2\n[secrets]\nrequired = []\n'
    )
    return path


@pytest.fixture
async def daemon(home: Path) -> AsyncIterator[Daemon]:
    d = Daemon(home)
    try:
        yield d
    finally:
        for channel in d.channels:
            await channel.close(None)
        d.stop()
        d.kill()


@pytest.fixture(scope="session")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Variables that point a daemon or a `stigmer` command at a real, private keyring."""
    with secret_service(tmp_path_factory.mktemp("keyring")) as variables:
        yield variables
