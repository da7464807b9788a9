"""`stigmer task submit FILE`: reading a task file into a request, or every problem in it."""

from __future__ import annotations

import uuid
from pathlib import Path

from cli.errors import CliError, ExitCode, UsageError
from cli.task_file import Problem, TaskFile, parse_task_file
from protos import task_pb2


def problems_message(source: str, problems: list[Problem]) -> str:
    """`error: task.yaml: 3 problems; nothing was submitted:` and one line per problem."""
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    lines = [f"error: {source}: {count}; nothing was submitted:"]
    lines += [f"  {p.describe(source)}" for p in problems]
    return "\n".join(lines)


def read_task_file(file: str) -> tuple[TaskFile, Path]:
    """The checked file and its folder; a CliError (exit 2) listing every problem."""
    path = Path(file).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{file}: is a directory; give a task file (YAML)") from None
    except OSError as e:
        raise UsageError(f"{file}: cannot read it: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        problems = [Problem(line, "", "not UTF-8 text")]
        raise CliError(problems_message(file, problems), ExitCode.USAGE) from None
    parsed = parse_task_file(text)
    if isinstance(parsed, list):
        raise CliError(problems_message(file, parsed), ExitCode.USAGE)
    return parsed, path.absolute().parent


def load_task(
    file: str, workspace: str | None, repo: str | None, branch: str | None
) -> tuple[str, task_pb2.TaskSpec]:
    """The request id (the file's `id`, so re-submitting is idempotent) and the spec."""
    from cli.run import choose_workspace

    override = choose_workspace(workspace, repo, branch)
    task_file, folder = read_task_file(file)
    spec = task_file.task_spec(folder, override)
    return task_file.id or str(uuid.uuid4()), spec
