"""The agent's tools, working in the task's workspace: what the agent loop imports."""

from runner.tools.base import Change, Constraints, SkillLoader, ToolError, ToolResult
from runner.tools.run import run_tool
from runner.tools.specs import TOOL_SPECS
from runner.tools.workspace import Workspace

__all__ = [
    "TOOL_SPECS",
    "Change",
    "Constraints",
    "SkillLoader",
    "ToolError",
    "ToolResult",
    "Workspace",
    "run_tool",
]
