"""Task files (`stigmer task submit FILE.yaml`): YAML text in, a task or every problem out.

    id: fix-flaky-test                # the request_id (re-submitting is idempotent)
    goal: Make tests/test_io.py pass  # required: what the agent should do
    description: |                    # more context, put under the goal
      It fails one run in ten on CI.
    applicable_skills: [python-testing]
    scope:
      allowed_write_globs: ["src/**", "tests/**"]
      allowed_read_globs: []
    constraints:
      max_files_changed: 5
      max_diff_bytes: 20000
      timeout_seconds: 900            # the run's wall-clock limit
      denylisted_commands: ["git push"]
    level: supervised                 # student | intern | supervised | autonomous
    model: claude-sonnet-4-5
    workspace: ..                     # relative to this file; or
    repo: https://example.com/x.git   # a repository cloned into a fresh folder
    branch: main

`parse_task_file` is a pure function: it walks the YAML node tree itself, so
every problem is reported with its field path and line, all at once, and
nothing is sent anywhere. yaml is imported here only, and this module only by
`task submit`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from protos import task_pb2

LEVELS: dict[str, task_pb2.PolicyLevel.ValueType] = {
    "student": task_pb2.POLICY_LEVEL_STUDENT,
    "intern": task_pb2.POLICY_LEVEL_INTERN,
    "supervised": task_pb2.POLICY_LEVEL_SUPERVISED,
    "autonomous": task_pb2.POLICY_LEVEL_AUTONOMOUS,
}
# The label the file's id is kept under on the task.
ID_LABEL = "task_file_id"
# The daemon's limits (task_service.proto's request_id, task.proto's labels and AgentSpec).
MAX_ID_CHARS = 128
MAX_SECONDS = 86400.0
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1
_SKILL = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# What PyYAML's SafeConstructor raises, besides YAMLError, for a scalar it cannot read:
# ValueError for `2024-13-01`, `!!int abc` or `!!float x`, AttributeError for
# `!!timestamp x`.
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, AttributeError, TypeError, OverflowError)

TOP_KEYS = (
    "id",
    "goal",
    "description",
    "applicable_skills",
    "scope",
    "constraints",
    "level",
    "model",
    "workspace",
    "repo",
    "branch",
)
SCOPE_KEYS = ("allowed_write_globs", "allowed_read_globs")
CONSTRAINT_KEYS = ("max_files_changed", "max_diff_bytes", "timeout_seconds", "denylisted_commands")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a task file: where (field path and 1-based line) and what."""

    line: int | None
    path: str
    message: str

    def describe(self, source: str = "") -> str:
        """`task.yaml:4: scope.allowed_write_globs: must be a list of strings`."""
        where = source
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        parts = [p for p in (where, self.path) if p]
        return ": ".join([*parts, self.message])


@dataclass(frozen=True)
class TaskFile:
    """A task file's content, checked."""

    goal: str
    id: str = ""
    description: str = ""
    applicable_skills: tuple[str, ...] = ()
    allowed_write_globs: tuple[str, ...] = ()
    allowed_read_globs: tuple[str, ...] = ()
    max_files_changed: int = 0
    max_diff_bytes: int = 0
    timeout_seconds: float = 0.0
    denylisted_commands: tuple[str, ...] = ()
    level: str = ""
    model: str = ""
    # As written in the file: relative to the file's folder.
    workspace: str = ""
    repo: str = ""
    branch: str = ""

    @property
    def prompt(self) -> str:
        """The goal, with the description under it."""
        if not self.description.strip():
            return self.goal.strip()
        return f"{self.goal.strip()}\n\n{self.description.strip()}"

    def agent_spec(self) -> task_pb2.AgentSpec:
        return task_pb2.AgentSpec(
            prompt=self.prompt,
            skills=self.applicable_skills,
            model=self.model,
            policy_level=LEVELS.get(self.level, task_pb2.POLICY_LEVEL_UNSPECIFIED),
            limits=task_pb2.AgentLimits(max_wall_seconds=self.timeout_seconds),
            constraints=task_pb2.AgentConstraints(
                allowed_write_globs=self.allowed_write_globs,
                allowed_read_globs=self.allowed_read_globs,
                max_files_changed=self.max_files_changed,
                max_diff_bytes=self.max_diff_bytes,
                denylisted_commands=self.denylisted_commands,
            ),
        )

    def workspace_for(self, file_dir: Path) -> task_pb2.Workspace | None:
        """The file's own workspace (None when it names none); paths are relative to the file."""
        if self.repo:
            return task_pb2.Workspace(
                git=task_pb2.GitSource(url=local_repo(self.repo, file_dir), branch=self.branch)
            )
        if self.workspace:
            path = Path(self.workspace).expanduser()
            if not path.is_absolute():
                path = file_dir / path
            return task_pb2.Workspace(path=str(absolute(path)))
        return None

    def task_spec(
        self, file_dir: Path, workspace: task_pb2.Workspace | None = None
    ) -> task_pb2.TaskSpec:
        """The spec to submit; `workspace` (from the command line) wins over the file's,
        and with neither the task runs in the current directory, as `stigmer run` does."""
        chosen = workspace or self.workspace_for(file_dir)
        if chosen is None:
            chosen = task_pb2.Workspace(path=str(absolute(Path.cwd())))
        spec = task_pb2.TaskSpec(agent=self.agent_spec(), workspace=chosen)
        if self.id:
            spec.labels[ID_LABEL] = self.id
        return spec


def absolute(path: Path) -> Path:
    import os

    return Path(os.path.normpath(path.expanduser().absolute()))


def local_repo(url: str, base: Path) -> str:
    """A repository given as a local path is made absolute (the runner clones elsewhere);
    URLs (`https://…`, `file://…`, `git@host:path`) are kept as they are."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = base / path
    return str(absolute(path)) if path.exists() else url


def parse_task_file(text: str) -> TaskFile | list[Problem]:
    """The task file's content, or every problem found in it (sorted by line)."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except RecursionError:
        # PyYAML's composer recurses once per nesting level; the reader stopped there.
        line = loader.get_mark().line + 1 if loader is not None else None
        return [Problem(line, "", "not valid YAML: nested too deeply; flatten the value")]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(p for p in (e.context, e.problem) if p) or "not valid YAML"
        return [Problem(mark.line + 1 if mark else None, "", f"not valid YAML: {what}")]
    except yaml.YAMLError as e:
        return [Problem(None, "", f"not valid YAML: {e}")]
    finally:
        if loader is not None:
            loader.dispose()
    checker = _Checker()
    result = checker.top(root)
    if checker.problems:
        return sorted(checker.problems, key=lambda p: (p.line is None, p.line or 0, p.path))
    assert result is not None
    return result


# --- the checks --------------------------------------------------------------


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


@dataclass(frozen=True)
class _Unreadable:
    """A scalar YAML cannot turn into a value (`!!int abc`, an unknown tag)."""

    tag: str
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.tag} {self.text!r}, {self.why}"


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag


def _kind(node: Node, value: Any = None) -> str:
    """What a node holds, in a user's words (for "got …")."""
    if isinstance(value, _Unreadable):
        return str(value)
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:39] + "…"
        return repr(shown)
    return f"a {type(value).__name__}"


@dataclass
class _Checker:
    problems: list[Problem] = field(default_factory=list)
    _constructor: SafeConstructor = field(default_factory=SafeConstructor)

    def add(self, node: Node | None, path: str, message: str) -> None:
        self.problems.append(Problem(_line(node) if node is not None else None, path, message))

    def scalar(self, node: ScalarNode) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except _CONSTRUCT_ERRORS as exc:
            # The constructor holds on to a node it failed on; let it try afresh.
            self._constructor.recursive_objects.pop(node, None)
            if node.tag == _TIMESTAMP:
                # A malformed timestamp (`2024-13-01`), say: keep the text.
                return node.value
            if node.tag not in self._constructor.yaml_constructors:
                why = "an unknown tag"
            elif isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
                why = exc.problem
            else:
                why = f"not a valid {_short_tag(node.tag).removeprefix('!!')}"
            return _Unreadable(_short_tag(node.tag), str(node.value), why)

    # -- shapes --

    def mapping(
        self, node: Node, path: str, keys: tuple[str, ...]
    ) -> dict[str, tuple[Node, Node]] | None:
        """The mapping's entries by key (key node, value node); unknown and repeated keys
        are problems. None when the node is not a mapping."""
        if not isinstance(node, MappingNode):
            got = _kind(node, self._value(node))
            if path:
                self.add(node, path, f"must be a mapping of fields (got {got})")
            else:
                self.add(node, "", f"the file must hold fields such as `goal: ...` (got {got})")
            return None
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, ScalarNode) else None
            where = f"{path}.{key}" if path and isinstance(key, str) else str(key)
            if not isinstance(key, str):
                self.add(key_node, path, f"field names must be text (got {_kind(key_node, key)})")
                continue
            if key in entries:
                first = _line(entries[key][0])
                self.add(key_node, where, f"given twice (first on line {first})")
                continue
            entries[key] = (key_node, value_node)
            if key not in keys:
                self.add(key_node, where, f"unknown field; expected one of {', '.join(keys)}")
        return {k: v for k, v in entries.items() if k in keys}

    def _value(self, node: Node) -> Any:
        return self.scalar(node) if isinstance(node, ScalarNode) else None

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _NULL

    def text(self, node: Node, path: str, *, required: bool = False) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            value = str(self.scalar(node))
            if required and not value.strip():
                self.add(node, path, "must not be empty")
                return None
            return value
        value = self._value(node)
        hint = ""
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            hint = f'; quote it: "{node.value}"'
        self.add(node, path, f"must be a string (got {_kind(node, value)}){hint}")
        return None

    def texts(self, node: Node, path: str) -> tuple[str, ...] | None:
        if not isinstance(node, SequenceNode):
            value = self._value(node)
            self.add(
                node,
                path,
                f"must be a list of strings (got {_kind(node, value)}); "
                "write `[a, b]` or one `- a` per line",
            )
            return None
        items: list[str] = []
        ok = True
        for i, item in enumerate(node.value):
            where = f"{path}[{i}]"
            value = self.text(item, where)
            if value is None:
                ok = False
            elif not value.strip():
                self.add(item, where, "must not be empty")
                ok = False
            else:
                items.append(value)
        return tuple(items) if ok else None

    def count(self, node: Node, path: str, most: int) -> int | None:
        value = self._value(node)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(node, path, f"must be a whole number (got {_kind(node, value)})")
            return None
        if value < 0:
            self.add(node, path, f"must not be negative (got {value}); 0 means no limit")
            return None
        if value > most:
            self.add(node, path, f"must be at most {most} (got {value})")
            return None
        return value

    def seconds(self, node: Node, path: str) -> float | None:
        value = self._value(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(node, path, f"must be a number of seconds (got {_kind(node, value)})")
            return None
        if math.isnan(value) or value < 0:
            self.add(node, path, f"must not be negative (got {value}); 0 means the default")
            return None
        if value > MAX_SECONDS:
            self.add(node, path, f"must be at most {MAX_SECONDS:g} (one day; got {value})")
            return None
        return float(value)

    # -- the file --

    def top(self, root: Node | None) -> TaskFile | None:
        if root is None:
            self.add(None, "", "the file is empty; it needs at least `goal: <what to do>`")
            return None
        entries = self.mapping(root, "", TOP_KEYS)
        if entries is None:
            return None
        values: dict[str, Any] = {}

        def take(key: str, check: Callable[[Node, str], Any]) -> None:
            if key in entries:
                node = entries[key][1]
                if self.is_null(node):
                    if key == "goal":
                        self.add(node, key, "is empty: say what the agent should do")
                    return  # `description:` with nothing after it: not given
                value = check(node, key)
                if value is not None:
                    values[key] = value

        take("goal", lambda n, p: self.text(n, p, required=True))
        if "goal" not in entries:
            self.add(None, "goal", "missing: say what the agent should do (`goal: ...`)")
        take("id", self._id)
        take("description", self.text)
        take("applicable_skills", self._skills)
        take("level", self._level)
        take("model", lambda n, p: self.text(n, p, required=True))
        take("workspace", lambda n, p: self.text(n, p, required=True))
        take("repo", lambda n, p: self.text(n, p, required=True))
        take("branch", lambda n, p: self.text(n, p, required=True))
        if "workspace" in entries and "repo" in entries:
            self.add(entries["repo"][0], "repo", "give `workspace` or `repo`, not both")
        if "branch" in entries and "repo" not in entries:
            self.add(entries["branch"][0], "branch", "needs `repo` (the repository to clone)")
        if "scope" in entries and not self.is_null(entries["scope"][1]):
            self._section(entries["scope"][1], "scope", SCOPE_KEYS, values)
        if "constraints" in entries and not self.is_null(entries["constraints"][1]):
            self._section(entries["constraints"][1], "constraints", CONSTRAINT_KEYS, values)
        if self.problems:
            return None
        return TaskFile(**values)

    def _section(
        self, node: Node, name: str, keys: tuple[str, ...], values: dict[str, Any]
    ) -> None:
        entries = self.mapping(node, name, keys)
        if entries is None:
            return
        for key, (_, value_node) in entries.items():
            path = f"{name}.{key}"
            if self.is_null(value_node):
                continue
            value: Any
            if key == "max_files_changed":
                value = self.count(value_node, path, MAX_UINT32)
            elif key == "max_diff_bytes":
                value = self.count(value_node, path, MAX_UINT64)
            elif key == "timeout_seconds":
                value = self.seconds(value_node, path)
            else:
                value = self.texts(value_node, path)
                if value is not None and key != "denylisted_commands":
                    value = self._globs(value_node, path, value)
            if value is not None:
                values[key] = value

    def _globs(self, node: Node, path: str, globs: tuple[str, ...]) -> tuple[str, ...] | None:
        ok = True
        for i, glob in enumerate(globs):
            if glob.startswith("/"):
                item = node.value[i] if isinstance(node, SequenceNode) else node
                self.add(item, f"{path}[{i}]", f"{glob!r}: use a glob relative to the workspace")
                ok = False
        return globs if ok else None

    def _id(self, node: Node, path: str) -> str | None:
        value = self.text(node, path, required=True)
        if value is None:
            return None
        if len(value) > MAX_ID_CHARS:
            self.add(node, path, f"must be at most {MAX_ID_CHARS} characters (got {len(value)})")
            return None
        if any(ord(c) < 32 for c in value):
            self.add(node, path, "must be one line, without control characters")
            return None
        return value

    def _skills(self, node: Node, path: str) -> tuple[str, ...] | None:
        names = self.texts(node, path)
        if names is None:
            return None
        ok = True
        for i, name in enumerate(names):
            if not _SKILL.fullmatch(name):
                item = node.value[i] if isinstance(node, SequenceNode) else node
                self.add(
                    item,
                    f"{path}[{i}]",
                    f"{name!r} is not a skill name (lowercase letters, digits and -)",
                )
                ok = False
        return names if ok else None

    def _level(self, node: Node, path: str) -> str | None:
        value = self.text(node, path, required=True)
        if value is None:
            return None
        level = value.strip().lower()
        if level not in LEVELS:
            self.add(node, path, f"{value!r}: expected one of {', '.join(LEVELS)}")
            return None
        return level
