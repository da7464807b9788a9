"""`stigmer runner ...`: the runner subprocesses the daemon supervises."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import runtime

app = typer.Typer(help="Inspect the daemon's runners.", no_args_is_help=True)


@app.command("list")
def list_runners(
    json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the runners and what they are doing."""
    runtime.run(_list(json))


async def _list(as_json: bool) -> int:
    import time

    from cli.client import DaemonClient
    from cli.output import print_json, print_table, to_dict
    from cli.views import RUNNER_COLUMNS, runner_row
    from protos.runner_service_pb2 import ListRunnersRequest

    async with DaemonClient() as client:
        response = await client.unary(client.runners.ListRunners, ListRunnersRequest())
    if as_json:
        print_json([to_dict(r) for r in response.runners])
        return 0
    now = time.time()
    print_table(RUNNER_COLUMNS, [runner_row(r, now) for r in response.runners])
    return 0
