"""The Agent Skills format: parse and validate a skill folder's SKILL.md.

A skill is a folder holding SKILL.md: YAML frontmatter between two `---` lines,
then Markdown. The daemon's registry and the CLI (`skills validate`, `skills new`)
both use this module, so it stays light: PyYAML is imported only to parse a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKILL_FILE = "SKILL.md"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
TOP_LEVEL_KEYS = ("name", "description", "license", "allowed-tools", "compatibility", "metadata")
OUR_METADATA_KEYS = ("domains", "languages", "tokens", "secrets")
# load_body lists at most this many bundled files: the agent needs a map, not an inventory.
MAX_LISTED_FILES = 50

NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")
# A domain or language tag: lowercase, no spaces; "c++", "c#" and "node.js" are real tags.
TAG_RE = re.compile(r"[a-z0-9][a-z0-9+#._-]*")
# The frontmatter's YAML starts on the file's second line (the first is `---`).
YAML_FIRST_LINE = 2


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is the file as a whole (missing, unreadable)
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}: {self.fix}"


@dataclass(frozen=True)
class SkillDoc:
    name: str
    description: str
    license: str
    allowed_tools: tuple[str, ...]
    compatibility: str
    domains: tuple[str, ...]
    languages: tuple[str, ...]
    tokens: int
    secrets: tuple[str, ...]
    body: str
    folder: Path
    files: tuple[str, ...]  # bundled files other than SKILL.md, relative, sorted


class _Report:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, line, message, fix))

    def sorted(self) -> list[Problem]:
        # Stable: problems on one line keep the order they were found in.
        return sorted(self.problems, key=lambda p: p.line)


def estimate_tokens(text: str) -> int:
    """About 4 characters a token, rounded up: close enough to budget prompts with."""
    return (len(text) + 3) // 4


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a skill's name, with the fix, or None when it can."""
    issue = _name_issue(name)
    return None if issue is None else f"{issue[0]}: {issue[1]}"


def _name_issue(name: str) -> tuple[str, str] | None:
    if len(name) > MAX_NAME:
        return (
            f"name is {len(name)} characters, over the limit of {MAX_NAME}",
            f"shorten it to at most {MAX_NAME} characters",
        )
    if not NAME_RE.fullmatch(name):
        slug = "-".join(re.findall(r"[a-z0-9]+", name.lower())) or "foo-bar"
        return (
            f"name {name!r} is not lowercase-hyphen",
            f"use lowercase letters, digits and hyphens, e.g. {slug}",
        )
    return None


def parse_skill(folder: Path) -> tuple[SkillDoc | None, list[Problem]]:
    """Every problem at once, sorted by line; a SkillDoc only when there is none."""
    path = folder / SKILL_FILE
    report = _Report(str(path))
    text = _read(folder, report)
    if text is None:
        return None, report.sorted()
    lines = text.splitlines()
    end = _closing_line(lines)
    if not lines or lines[0].rstrip() != "---":
        report.add(
            1,
            "no frontmatter",
            "start the file with a line '---', then name and description, "
            "then a line '---' and the Markdown body",
        )
        return None, report.sorted()
    if end is None:
        report.add(1, "frontmatter is not closed", "end the YAML with a line '---' before the body")
        return None, report.sorted()
    loaded = _load_yaml("\n".join(lines[1:end]), report)
    body = _body(lines[end + 1 :])
    if not body.strip():
        # The closing line: the one line sure to exist when the body is missing.
        report.add(
            end + 1,
            "the body is empty",
            "after the closing '---', write the instructions: when to use, steps, examples",
        )
    if loaded is None:
        return None, report.sorted()
    data, key_lines = loaded
    doc = _check(data, key_lines, folder, body, report)
    if report.problems or doc is None:
        return None, report.sorted()
    return doc, []


def _read(folder: Path, report: _Report) -> str | None:
    if not folder.is_dir():
        report.add(0, "not a folder", "point at a skill's folder, the one that holds SKILL.md")
        return None
    path = folder / SKILL_FILE
    if not path.is_file():
        report.add(0, "missing SKILL.md", "create it, e.g. with `stigmer skills new NAME`")
        return None
    try:
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        report.add(0, "not UTF-8 text", "save the file as UTF-8")
    except OSError as exc:
        report.add(0, f"cannot be read ({exc.strerror})", "check the file's permissions")
    return None


def _closing_line(lines: list[str]) -> int | None:
    """The index of the `---` that closes the frontmatter, if the file has one."""
    if not lines or lines[0].rstrip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].rstrip() == "---":
            return index
    return None


def _body(lines: list[str]) -> str:
    # Leading blank lines go, but not the first line's indentation (it may be code).
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:]).rstrip()


class _BadValue(Exception):
    """A scalar YAML cannot turn into a value: `2024-13-01`, `!!int abc`, `!!timestamp x`."""

    def __init__(self, node: Any) -> None:
        super().__init__(node)
        self.node = node


def _loader(text: str) -> Any:
    """A safe loader whose constructor raises _BadValue, naming the node, where PyYAML's
    SafeConstructor raises a bare ValueError or AttributeError (not a YAMLError)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, AttributeError, TypeError, OverflowError):
                raise _BadValue(node) from None

    return Loader(text)


def _load_yaml(text: str, report: _Report) -> tuple[dict[Any, Any], dict[str, int]] | None:
    """The frontmatter as a mapping, and the file line of each key (metadata's as
    "metadata.KEY"); None after reporting why it is not one."""
    import yaml

    loader = None
    composed = False
    try:
        loader = _loader(text)
        node = loader.get_single_node()
        composed = True
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        # PyYAML recurses once per nesting level; the reader stopped where it got too deep.
        line = loader.get_mark().line if loader is not None and not composed else 0
        report.add(
            line + YAML_FIRST_LINE,
            "YAML nested too deeply",
            "flatten the value: frontmatter needs a few levels at most",
        )
        return None
    except _BadValue as exc:
        bad = exc.node
        tag = str(bad.tag).removeprefix("tag:yaml.org,2002:")
        report.add(
            bad.start_mark.line + YAML_FIRST_LINE,
            f"{bad.value!r} is not a valid {tag}",
            "quote the value (and drop any '!!' tag) to keep it as text",
        )
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + YAML_FIRST_LINE if mark is not None else YAML_FIRST_LINE
        report.add(
            line,
            f"YAML syntax error: {exc.problem or exc.context}",
            "fix the YAML; quote a value that contains ': ' or starts with a special character",
        )
        return None
    except yaml.YAMLError as exc:
        report.add(YAML_FIRST_LINE, f"YAML error: {exc}", "fix the YAML between the '---' lines")
        return None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        report.add(
            YAML_FIRST_LINE,
            "frontmatter is not a mapping",
            "write 'key: value' lines, at least name and description",
        )
        return None
    key_lines: dict[str, int] = {}
    _key_lines(node, "", key_lines, report)
    for key_node, value_node in node.value:
        if key_node.value == "metadata" and isinstance(value_node, yaml.MappingNode):
            _key_lines(value_node, "metadata.", key_lines, report)
    return data, key_lines


def _key_lines(node: Any, prefix: str, key_lines: dict[str, int], report: _Report) -> None:
    # Read off the composed nodes: the constructed dict has lost its line numbers,
    # and silently keeps only the last of two equal keys.
    for key_node, _ in node.value:
        key = prefix + str(key_node.value)
        line = key_node.start_mark.line + YAML_FIRST_LINE
        if key in key_lines:
            report.add(line, f"duplicate key {key!r}", "keep one of them")
        else:
            key_lines[key] = line


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", bool: "true/false", int: "a number"}
    return names.get(type(value), type(value).__name__)


def _check(
    data: dict[Any, Any], key_lines: dict[str, int], folder: Path, body: str, report: _Report
) -> SkillDoc | None:
    def line(key: str) -> int:
        return key_lines.get(key, 1)

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            where = "under metadata" if key in OUR_METADATA_KEYS else "your own keys under metadata"
            report.add(
                line(str(key)),
                f"unknown key {str(key)!r}",
                f"the allowed keys are {', '.join(TOP_LEVEL_KEYS)}; put {where}",
            )
    name = _required_str(data, "name", line("name"), report, f"add 'name: {_folder_name(folder)}'")
    if name is not None:
        issue = _name_issue(name)
        if issue is not None:
            report.add(line("name"), *issue)
        if name != _folder_name(folder):
            report.add(
                line("name"),
                f"name {name!r} differs from its folder {_folder_name(folder)!r}",
                f"rename the folder to {name!r} or set 'name: {_folder_name(folder)}'",
            )
    description = _required_str(
        data,
        "description",
        line("description"),
        report,
        "add 'description: what the skill does and when to use it'",
    )
    if description is not None:
        _check_description(description, line("description"), report)
    license_ = _optional_str(data, "license", line("license"), report)
    compatibility = _optional_str(data, "compatibility", line("compatibility"), report)
    if compatibility is not None and len(compatibility) > MAX_COMPATIBILITY:
        report.add(
            line("compatibility"),
            f"compatibility is {len(compatibility)} characters, over the limit of "
            f"{MAX_COMPATIBILITY}",
            "keep it to the environment the skill needs; move detail into the body",
        )
    tools = _allowed_tools(data.get("allowed-tools"), line("allowed-tools"), report)
    meta = _metadata(data.get("metadata"), line, report)
    if name is None or description is None or tools is None or meta is None:
        return None
    domains, languages, tokens, secrets = meta
    return SkillDoc(
        name=name,
        description=description,
        license=license_ or "",
        allowed_tools=tools,
        compatibility=compatibility or "",
        domains=domains,
        languages=languages,
        tokens=tokens if tokens is not None else estimate_tokens(body),
        secrets=secrets,
        body=body,
        folder=folder,
        files=bundled_files(folder),
    )


def _folder_name(folder: Path) -> str:
    # resolve(): `stigmer skills validate .` names the folder ".", whose name is "".
    return folder.name or folder.resolve().name


def _required_str(
    data: dict[Any, Any], key: str, line: int, report: _Report, fix: str
) -> str | None:
    value = data.get(key)
    if key not in data or value is None:
        report.add(line, f"{key} is missing", fix)
        return None
    if not isinstance(value, str):
        report.add(line, f"{key} must be a string, not {_kind(value)}", "quote the value")
        return None
    if not value.strip():
        report.add(line, f"{key} is empty", fix)
        return None
    return value


def _optional_str(data: dict[Any, Any], key: str, line: int, report: _Report) -> str | None:
    # An optional key left empty (`license:`) counts as absent.
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    report.add(line, f"{key} must be a string, not {_kind(value)}", "quote the value")
    return None


def _check_description(description: str, line: int, report: _Report) -> None:
    if len(description) > MAX_DESCRIPTION:
        report.add(
            line,
            f"description is {len(description)} characters, over the limit of {MAX_DESCRIPTION}",
            "say what the skill does and when to use it; move detail into the body",
        )
    if "<" in description or ">" in description:
        report.add(
            line,
            "description contains angle brackets",
            "remove '<' and '>' (the description goes into the prompt, where they read as markup)",
        )


def _allowed_tools(value: object, line: int, report: _Report) -> tuple[str, ...] | None:
    fix = "write a list, e.g. [Read, 'Bash(git status:*)'], or a string 'Read, Grep'"
    if value is None:
        return ()
    if isinstance(value, list):
        if all(isinstance(item, str) and item.strip() for item in value):
            return tuple(item.strip() for item in value)
        report.add(line, "allowed-tools has an item that is not a tool name", fix)
        return None
    if not isinstance(value, str):
        report.add(line, f"allowed-tools must be a list or a string, not {_kind(value)}", fix)
        return None
    tools = split_tools(value)
    if tools is None:
        report.add(line, "allowed-tools has unbalanced parentheses", fix)
    return tools


def split_tools(text: str) -> tuple[str, ...] | None:
    """Tool rules from a string, split at commas or spaces outside parentheses, so the
    spec's "Read Grep", Claude Code's "Read, Grep" and "Bash(git status:*)" all work.
    None when the parentheses do not balance."""
    tools: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        if depth == 0 and (char == "," or char.isspace()):
            tools.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        return None
    tools.append("".join(current))
    return tuple(tool for tool in tools if tool)


_Meta = tuple[tuple[str, ...], tuple[str, ...], int | None, tuple[str, ...]]


def _metadata(value: object, line: Callable[[str], int], report: _Report) -> _Meta | None:
    if value is None:
        return (), (), None, ()
    if not isinstance(value, dict):
        report.add(
            line("metadata"),
            f"metadata must be a mapping, not {_kind(value)}",
            "indent 'key: value' lines under 'metadata:'",
        )
        return None
    before = len(report.problems)
    domains = _tags(value, "domains", line("metadata.domains"), report)
    languages = _tags(value, "languages", line("metadata.languages"), report)
    tokens = value.get("tokens")
    # bool is an int in Python, but `tokens: true` is a mistake, not a count.
    positive = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0
    if tokens is not None and not positive:
        report.add(
            line("metadata.tokens"),
            f"metadata.tokens must be a positive whole number, not {tokens!r}",
            "write the body's size in tokens, or remove it to have it computed",
        )
    secrets = _list(value, "secrets", line("metadata.secrets"), report, ENV_NAME_RE, "GITHUB_TOKEN")
    if len(report.problems) > before:
        return None
    return domains, languages, tokens, secrets


def _tags(meta: dict[Any, Any], key: str, line: int, report: _Report) -> tuple[str, ...]:
    example = "testing" if key == "domains" else "python"
    return _list(meta, key, line, report, TAG_RE, example)


def _list(
    meta: dict[Any, Any], key: str, line: int, report: _Report, shape: re.Pattern[str], example: str
) -> tuple[str, ...]:
    value = meta.get(key)
    if value is None:
        return ()
    what = "an environment variable name" if shape is ENV_NAME_RE else "a lowercase word"
    if not isinstance(value, list):
        report.add(
            line,
            f"metadata.{key} must be a list, not {_kind(value)}",
            f"write '{key}: [{example}]'",
        )
        return ()
    for item in value:
        if not isinstance(item, str) or not shape.fullmatch(item):
            report.add(
                line,
                f"metadata.{key}: {item!r} is not {what}",
                f"use names like {example}",
            )
    return tuple(item for item in value if isinstance(item, str))


def bundled_files(folder: Path) -> tuple[str, ...]:
    """Files in the skill folder other than SKILL.md, relative, sorted; hidden files
    and caches are not part of a skill."""
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if not name.startswith(".") and relative != SKILL_FILE:
                found.append(relative)
    return tuple(sorted(found))


def load_body(folder: Path) -> str:
    """What `load_skill` returns: the Markdown after the frontmatter, then where the
    bundled files are, so the agent can read the ones the steps mention."""
    text = (folder / SKILL_FILE).read_text(encoding="utf-8").removeprefix("\ufeff")
    lines = text.splitlines()
    end = _closing_line(lines)
    body = _body(lines if end is None else lines[end + 1 :])
    files = bundled_files(folder)
    if not files:
        return body
    listed = [f"- {name}" for name in files[:MAX_LISTED_FILES]]
    if len(files) > MAX_LISTED_FILES:
        listed.append(f"- … and {len(files) - MAX_LISTED_FILES} more")
    return f"{body}\n\nBundled files, under {folder.resolve()}:\n" + "\n".join(listed)


def template(name: str) -> str:
    """A valid SKILL.md to start from (`stigmer skills new NAME`); ValueError for a
    name that could not be a skill's."""
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    title = name.replace("-", " ").capitalize()
    return f"""---
name: {name}
description: Replace this with what the skill does and when the agent should use it.
metadata:
  # Tags the registry matches against a task's domains and languages, e.g. [testing, git].
  domains: []
  languages: []
---

# {title}

## When to use

- The situations this skill is for, and the ones it is not for.

## Steps

1. The first thing to do, and how to tell it worked.
2. The next step.

## Examples

Show a short, concrete example of the steps applied.
"""
