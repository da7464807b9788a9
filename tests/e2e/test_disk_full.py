"""A full state folder: the daemon says so, refuses new work with RESOURCE_EXHAUSTED,
keeps what it stored, and takes work again once space returns. The state folder is a
small tmpfs, so this runs as root (as CI does) and is skipped otherwise."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.support import Client, Daemon, output_of, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_state(home: Path) -> Iterator[Path]:
    state = home / "state"
    state.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that takes all but `leave_bytes` of the folder's file system."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as f:
        f.truncate(0)
        remaining = max(0, free - leave_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            try:
                remaining -= f.write(chunk[: min(len(chunk), remaining)])
                f.flush()
            except OSError:
                break
    return filler


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def _refused(client: Client) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.create(["echo", "more"])
    return caught.value


async def test_low_space_refuses_new_work_and_recovers(
    daemon: Daemon, home: Path, small_state: Path
) -> None:
    write_config(
        home,
        '[daemon]\ntcp_address = ""\nmin_free_mb = 2\n[runners]\ncount = 1\n'
        "[secrets]\nrequired = []\n",
    )
    client = await daemon.start()
    before = await client.create(["echo", "stored before"])
    assert output_of(await client.events(before.id)) == b"stored before\n"
    filler = fill(small_state, 1 << 20)  # 1 MiB left: under the 2 MiB floor
    err = await _refused(client)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(err) == "STATE_DISK_FULL" and "free some space" in (err.details() or "")
    status = await client.status()
    assert any("min_free_mb" in p for p in status.problems)
    # What was stored is still there and readable.
    assert (await client.get(before.id)).result.exit_code == 0
    filler.unlink()
    after = await client.create(["echo", "room again"])
    assert output_of(await client.events(after.id)) == b"room again\n"
    assert not (await client.status()).problems


async def test_a_write_that_hits_a_full_disk_is_refused_not_internal(
    daemon: Daemon, home: Path, small_state: Path
) -> None:
    write_config(
        home,
        '[daemon]\ntcp_address = ""\nmin_free_mb = 0\n[runners]\ncount = 1\n'
        "[secrets]\nrequired = []\n",
    )
    client = await daemon.start()
    filler = fill(small_state, 0)
    refused = 0
    for i in range(50):  # SQLite may still have room in pages it holds
        try:
            await client.create(["echo", "x" * 4000, str(i)])
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
            assert reason(err) == "STATE_DISK_FULL"
            refused += 1
            break
    assert refused == 1
    assert (await client.status()).pid == daemon.process.pid  # type: ignore[union-attr]
    filler.unlink()
    task = await client.create(["echo", "fine"])
    assert output_of(await client.events(task.id)) == b"fine\n"
