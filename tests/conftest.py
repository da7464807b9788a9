from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Daemon, write_config


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    # TCP stays off so parallel daemons never fight over a port.
    write_config(path, '[daemon]\ntcp_address = ""\n[runners]\ncount = 2\n')
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
