"""The task's folder: confining paths to it, and the bookkeeping the task's constraints need."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from runner.tools import globs
from runner.tools.base import Constraints, ToolError


class Workspace:
    """Where the tools work. Every path a tool takes goes through `resolve` (or `locate`)."""

    def __init__(self, root: Path, constraints: Constraints, env: Mapping[str, str]) -> None:
        # The root as given (absolute) and as the file system has it (symlinks resolved):
        # the model may write either form, and containment is judged on the real one.
        self.given_root = Path(os.path.abspath(root))
        self.root = self.given_root.resolve()
        self.constraints = constraints
        # The scrubbed environment bash runs with.
        self.env: dict[str, str] = dict(env)
        # Only write_file and edit_file count here; what bash changes is not tracked.
        self.files_changed: set[str] = set()
        self.bytes_written = 0

    def resolve(self, path: str, *, write: bool) -> Path:
        """The real path of a file the model names, once it is known to be allowed.

        Raises ToolError for an empty path, a path outside the workspace (absolute, or
        with `..` leaving it, or through a symlink - a file or a folder on the way -
        whose real target leaves it) and a path the task's globs do not allow.
        """
        real = self.locate(path)
        rel = self.relative(real)
        if write:
            allowed = self.constraints.allowed_write_globs
            if allowed and not globs.match_any(allowed, rel):
                raise ToolError(
                    f"writing {rel} is not allowed: this task may only write paths matching "
                    f"{', '.join(allowed)}"
                )
        elif not self.may_read(rel):
            raise ToolError(
                f"reading {rel} is not allowed: this task may only read paths matching "
                f"{', '.join(self.constraints.allowed_read_globs)}"
            )
        return real

    def locate(self, path: str) -> Path:
        """The real path, checked to be inside the workspace (the globs are not checked)."""
        if not path or not path.strip():
            raise ToolError("path is empty: give a path relative to the workspace")
        if "\0" in path:
            raise ToolError("path contains a NUL character")
        if path == "~" or path.startswith("~/"):
            raise ToolError(
                f"{path}: `~` is not expanded and the home folder is outside the workspace; "
                "use a path relative to the workspace"
            )
        named = Path(path) if os.path.isabs(path) else self.given_root / path
        lexical = Path(os.path.normpath(named))
        if not (lexical.is_relative_to(self.given_root) or lexical.is_relative_to(self.root)):
            raise ToolError(
                f"{path} is outside the workspace ({self.given_root}); "
                "only paths inside the workspace can be used"
            )
        try:
            real = named.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long...
            raise ToolError(f"{path}: cannot resolve the path ({exc})") from None
        if not real.is_relative_to(self.root):
            raise ToolError(
                f"{path} is outside the workspace: it resolves through a symbolic link to "
                f"{real}, and only paths inside the workspace ({self.given_root}) can be used"
            )
        return real

    def relative(self, real: Path) -> str:
        """The workspace-relative POSIX form of a real path inside it ("." for the root)."""
        return real.relative_to(self.root).as_posix()

    def may_read(self, rel: str) -> bool:
        allowed = self.constraints.allowed_read_globs
        return not allowed or globs.match_any(allowed, rel)

    def check_limits(self, rel: str, nbytes: int) -> None:
        """Raises ToolError when writing `nbytes` more to `rel` would pass a limit."""
        limits = self.constraints
        changed = len(self.files_changed)
        if 0 < limits.max_files_changed <= changed and rel not in self.files_changed:
            raise ToolError(
                f"not written: {rel} would be file number {changed + 1} changed, and this "
                f"task may change at most {limits.max_files_changed} files (already "
                f"changed: {', '.join(sorted(self.files_changed))})"
            )
        if limits.max_diff_bytes > 0 and self.bytes_written + nbytes > limits.max_diff_bytes:
            left = max(limits.max_diff_bytes - self.bytes_written, 0)
            raise ToolError(
                f"not written: this change is {nbytes} bytes and only {left} of the task's "
                f"{limits.max_diff_bytes} bytes of changes are left"
            )

    def record(self, rel: str, nbytes: int) -> None:
        self.files_changed.add(rel)
        self.bytes_written += nbytes
