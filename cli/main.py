"""`stigmer`: the command line of stigmer-local.

Every command's failure reaches `main()` as a `CliError` and is printed as one
line on stderr, with the exit code from the table in cli/errors.py.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli import audit, daemon_cmd, local, runners, secrets, skills, tasks, top
from cli.errors import CliError, ExitCode
from cli.run import run

app = typer.Typer(
    name="stigmer",
    help="Run tasks on this machine through the stigmer-local daemon.",
    no_args_is_help=True,
    add_completion=False,
    # Our errors are printed by main(); anything else is a bug worth its traceback.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(local.app, name="local")
app.add_typer(tasks.app, name="task")
app.add_typer(runners.app, name="runner")
app.add_typer(daemon_cmd.app, name="daemon")
app.add_typer(secrets.app, name="secrets")
app.add_typer(skills.app, name="skills")
app.command(
    "run",
    context_settings={"help_option_names": ["-h", "--help"]},
)(run)
app.command(
    "top",
    context_settings={"help_option_names": ["-h", "--help"]},
)(top.top)
app.command(
    "audit",
    context_settings={"help_option_names": ["-h", "--help"]},
)(audit.audit)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        sys.stdout.write(f"stigmer {version('stigmer-local')}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run tasks on this machine through the stigmer-local daemon."""


def main() -> None:
    try:
        app()
    except CliError as e:
        _fail(e.message, e.exit_code)
    except KeyboardInterrupt:
        _fail("", ExitCode.INTERRUPTED)
    except Exception as e:
        if os.environ.get("STIGMER_DEBUG"):
            raise
        _fail(
            f"error: unexpected {type(e).__name__}: {e} (set STIGMER_DEBUG=1 for details)",
            ExitCode.FAILURE,
        )


def _fail(message: str, code: int) -> None:
    if message:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
