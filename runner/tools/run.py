"""Running one tool call: checking its input, and turning every failure into a tool error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from runner.tools import files, search
from runner.tools.base import SkillLoader, ToolError, ToolResult
from runner.tools.bash import run_bash
from runner.tools.specs import TOOL_SPECS
from runner.tools.workspace import Workspace

log = logging.getLogger(__name__)

_MISSING = object()


class _Input:
    """The fields of one call's input, each checked for its type, naming the field if wrong."""

    def __init__(self, tool: str, data: Mapping[str, Any], fields: tuple[str, ...]) -> None:
        self._tool = tool
        self._data = data
        unknown = sorted(str(key) for key in data if key not in fields)
        if unknown:
            raise ToolError(
                f"{tool}: unknown field {', '.join(map(repr, unknown))}; "
                f"its fields are {', '.join(fields)}"
            )

    def _get(self, name: str, required: bool, kind: str) -> Any:
        value = self._data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise ToolError(f"{self._tool}: field {name!r} is required ({kind})")
            return None
        return value

    def _wrong(self, name: str, kind: str, value: Any) -> ToolError:
        return ToolError(
            f"{self._tool}: field {name!r} must be {kind}, not {_json_type(value)} ({value!r:.80})"
        )

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self._get(name, required, "a string")
        if value is not None and not isinstance(value, str):
            raise self._wrong(name, "a string", value)
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name)
        assert value is not None
        return value

    def integer(self, name: str, *, minimum: int) -> int | None:
        value = self._get(name, False, "an integer")
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "an integer", value)
        if value < minimum:
            raise ToolError(f"{self._tool}: field {name!r} must be at least {minimum}, not {value}")
        return value

    def seconds(self, name: str) -> float | None:
        value = self._get(name, False, "a number of seconds")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(name, "a number of seconds", value)
        if not value > 0:
            raise ToolError(f"{self._tool}: field {name!r} must be more than 0, not {value}")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._get(name, False, "true or false")
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(name, "true or false", value)
        return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


Tool = Callable[[Mapping[str, Any], Workspace, SkillLoader | None], Awaitable[ToolResult]]


async def _bash(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("bash", data, ("command", "timeout"))
    command = args.required_text("command")
    timeout = args.seconds("timeout")
    if not command.strip():
        raise ToolError("bash: field 'command' is empty")
    return await run_bash(command, timeout, ws)


async def _read(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("read_file", data, ("path", "offset", "limit"))
    path = args.required_text("path")
    offset = args.integer("offset", minimum=1)
    limit = args.integer("limit", minimum=1)
    return await files.read_file(ws, path, offset, limit)


async def _write(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("write_file", data, ("path", "content"))
    return files.write_file(ws, args.required_text("path"), args.required_text("content"))


async def _edit(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("edit_file", data, ("path", "old_string", "new_string", "replace_all"))
    return files.edit_file(
        ws,
        args.required_text("path"),
        args.required_text("old_string"),
        args.required_text("new_string"),
        args.flag("replace_all"),
    )


async def _list(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("list_dir", data, ("path",))
    return files.list_dir(ws, args.text("path", required=False) or ".")


async def _glob(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("glob", data, ("pattern",))
    return await search.glob(ws, args.required_text("pattern"))


async def _grep(data: Mapping[str, Any], ws: Workspace, _: SkillLoader | None) -> ToolResult:
    args = _Input("grep", data, ("pattern", "path", "glob"))
    pattern = args.required_text("pattern")
    path = args.text("path", required=False) or "."
    return await search.grep(ws, pattern, path, args.text("glob", required=False) or None)


async def _load_skill(
    data: Mapping[str, Any], _: Workspace, skills: SkillLoader | None
) -> ToolResult:
    args = _Input("load_skill", data, ("name",))
    name = args.required_text("name")
    if skills is None:
        raise ToolError(f"no skill named {name!r} is available: this task has no skills")
    try:
        return ToolResult(skills.load(name))
    except KeyError:
        raise ToolError(
            f"no skill named {name!r} is available; use a name listed in the system prompt"
        ) from None


_TOOLS: dict[str, Tool] = {
    "bash": _bash,
    "read_file": _read,
    "write_file": _write,
    "edit_file": _edit,
    "list_dir": _list,
    "glob": _glob,
    "grep": _grep,
    "load_skill": _load_skill,
}
assert [spec["name"] for spec in TOOL_SPECS] == list(_TOOLS)


async def run_tool(
    name: str,
    tool_input: Mapping[str, Any],
    workspace: Workspace,
    skills: SkillLoader | None = None,
) -> ToolResult:
    """Runs one tool call. A bad input or a failing tool is an error result, never a raise;
    cancellation propagates (after a running bash's process group is killed)."""
    tool = _TOOLS.get(name)
    if tool is None:
        return ToolResult(
            f"there is no tool named {name!r}; the tools are {', '.join(_TOOLS)}", is_error=True
        )
    if not isinstance(tool_input, Mapping):
        return ToolResult(
            f"{name}: the input must be an object, not {_json_type(tool_input)}", is_error=True
        )
    try:
        return await tool(tool_input, workspace, skills)
    except ToolError as exc:
        return ToolResult(str(exc), is_error=True)
    except OSError as exc:
        return ToolResult(f"{name} failed: {_describe_os_error(exc, workspace)}", is_error=True)
    except Exception as exc:  # a bug here must not end the agent's run
        log.exception("tool %s failed", name)
        return ToolResult(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)


def _describe_os_error(exc: OSError, workspace: Workspace) -> str:
    """The error with workspace paths shown relative, as the model named them."""
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        name = str(exc.filename)
        for root in (str(workspace.root), str(workspace.given_root)):
            if name.startswith(root + "/"):
                name = name[len(root) + 1 :]
                break
        text = f"{text}: {name}"
    return text
