"""The Node.js example (examples/node/submit.js) against a real daemon.

Runs when `node` is on PATH and the example's packages are installed
(`npm ci --prefix examples/node`; CI does it in .ci/run).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos import task_pb2, task_service_pb2
from tests.support import REPO, Client, Daemon, env_for

EXAMPLE = REPO / "examples" / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir(),
        reason="the example's packages are not installed: npm ci --prefix examples/node",
    ),
]


async def submit(home: Path, cwd: Path, *argv: str) -> tuple[int, str, str]:
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(EXAMPLE / "submit.js"),
        "--",
        *argv,
        cwd=cwd,
        env=env_for(home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def sends_error_info(client: Client) -> bool:
    """Whether this daemon attaches rich status details (google.rpc.ErrorInfo) to errors."""
    bad = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=[]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(spec=bad), metadata=client.md
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The stubs type trailers as _Metadatum objects; at run time they are key, value pairs.
    trailers: Any = caught.value.trailing_metadata() or ()
    return any(key == "grpc-status-details-bin" for key, _ in trailers)


async def test_submits_a_command_and_streams_it_to_its_exit_code(
    daemon: Daemon, tmp_path: Path
) -> None:
    await daemon.start()
    code, out, err = await submit(daemon.home, tmp_path, "sh", "-c", "echo hi; pwd; exit 3")
    assert code == 3, err
    assert out.splitlines() == ["hi", str(tmp_path)]
    # Every event other than output is one line on stderr, the last one `finished`.
    assert "queued" in err and "started" in err
    assert "finished" in err and "TASK_STATE_FAILED" in err


async def test_a_bad_request_prints_the_code_and_the_reason(daemon: Daemon, tmp_path: Path) -> None:
    client = await daemon.start()
    code, out, err = await submit(daemon.home, tmp_path)  # `--` and nothing after it
    assert code == 2, err
    assert out == ""
    assert "INVALID_ARGUMENT" in err and "spec.command.argv" in err
    if await sends_error_info(client):
        assert "[INVALID_FIELD field=spec.command.argv]" in err


async def test_no_daemon_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    code, out, err = await submit(home, tmp_path, "true")
    assert code == 3
    assert out == ""
    assert "token file" in err
