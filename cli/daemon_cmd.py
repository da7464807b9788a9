"""`stigmer daemon run`: the daemon in the foreground, for service managers and debugging."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Run the daemon itself.", no_args_is_help=True)


@app.command("run")
def run_daemon() -> None:
    """Run the daemon in the foreground (logs on stderr; Ctrl-C stops it)."""
    home = os.environ.get("STIGMER_HOME")
    if home:
        # The daemon runs from / (below), so a relative STIGMER_HOME must be absolute.
        os.environ["STIGMER_HOME"] = str(Path(home).absolute())
    # From / so a `daemon` folder in the user's directory cannot shadow ours
    # (`python -m` puts the working directory first on sys.path).
    os.chdir("/")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "daemon"])
