"""The tools as the model sees them: Anthropic Messages API tool definitions."""

from __future__ import annotations

from typing import Any

from runner.tools.bash import DEFAULT_TIMEOUT, HEAD_BYTES, MAX_TIMEOUT
from runner.tools.files import DEFAULT_READ_LINES, MAX_READ_BYTES
from runner.tools.search import MAX_GLOB_RESULTS, MAX_GREP_MATCHES

_PATH = (
    "Path of the {what}, relative to the workspace (absolute paths are accepted only "
    "inside the workspace)."
)

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "name": "bash",
        "description": (
            "Runs a shell command with bash -c in the workspace folder and returns its output "
            "(stdout and stderr merged) and its exit code. Standard input is closed, so "
            "interactive programs get end-of-file: pass flags such as --yes or --no-pager. "
            f"The command is killed after `timeout` seconds (default {DEFAULT_TIMEOUT:g}, at "
            f"most {MAX_TIMEOUT:g}), together with everything it started; background "
            "processes are killed when the command ends, so do not start servers meant to "
            f"outlive it. Long output keeps its first and last {HEAD_BYTES // 1024} KiB, "
            "with the number of bytes cut in between. Prefer read_file, edit_file, "
            "write_file, glob and grep for files: changes made through bash do not count "
            "as the task's file changes."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run."},
                "timeout": {
                    "type": "integer",
                    "description": (
                        f"Seconds before the command is killed (default {DEFAULT_TIMEOUT:g}, "
                        f"at most {MAX_TIMEOUT:g})."
                    ),
                    "minimum": 1,
                    "maximum": int(MAX_TIMEOUT),
                },
            },
            "required": ["command"],
        },
    },
    {
        "name": "read_file",
        "description": (
            "Reads a text file and returns its lines numbered like `cat -n` (number, tab, "
            f"text). Without offset and limit it shows the first {DEFAULT_READ_LINES} lines; "
            f"at most {MAX_READ_BYTES // 1024} KiB are shown per call, and a note at the "
            "end says when the file goes on and which offset reads on. The line numbers "
            "are not part of the file: leave them out of edit_file's old_string. Binary "
            "files are refused."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": _PATH.format(what="file")},
                "offset": {
                    "type": "integer",
                    "description": "First line to show, counting from 1 (default 1).",
                    "minimum": 1,
                },
                "limit": {
                    "type": "integer",
                    "description": f"How many lines to show (default {DEFAULT_READ_LINES}).",
                    "minimum": 1,
                },
            },
            "required": ["path"],
        },
    },
    {
        "name": "write_file",
        "description": (
            "Writes a whole file, creating it (and its missing parent folders) or replacing "
            "what it held. The write is atomic: the file is never seen half written. To "
            "change part of an existing file, prefer edit_file. The task may limit which "
            "paths can be written, how many files may change and how many bytes; a write "
            "past a limit is refused before anything is written."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": _PATH.format(what="file to write")},
                "content": {"type": "string", "description": "The file's full new content."},
            },
            "required": ["path", "content"],
        },
    },
    {
        "name": "edit_file",
        "description": (
            "Replaces an exact piece of text in an existing file. old_string must match the "
            "file exactly, whitespace and indentation included (copy it from read_file's "
            "output without the line numbers), and must occur exactly once, unless "
            "replace_all is true; otherwise nothing is changed and the error says how "
            "many times it matched, so add surrounding lines to make it unique."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": _PATH.format(what="file to edit")},
                "old_string": {"type": "string", "description": "The exact text to replace."},
                "new_string": {"type": "string", "description": "The text to put instead."},
                "replace_all": {
                    "type": "boolean",
                    "description": "Replace every occurrence instead of exactly one.",
                    "default": False,
                },
            },
            "required": ["path", "old_string", "new_string"],
        },
    },
    {
        "name": "list_dir",
        "description": (
            "Lists a folder of the workspace: entries sorted by name, folders ending in "
            "`/`, files with their size in bytes, symbolic links with their target. The "
            "contents of .git are not listed."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": _PATH.format(what="folder") + " Default: the workspace.",
                    "default": ".",
                },
            },
        },
    },
    {
        "name": "glob",
        "description": (
            "Finds paths in the workspace matching a glob pattern, relative to the "
            "workspace: `*` and `?` match within a name, `**` matches any number of folders "
            "(`**/*.py` finds Python files at any depth; `*.py` only at the top). Folders "
            f"end in `/`. Sorted; at most {MAX_GLOB_RESULTS} paths are shown. .git is "
            "skipped and symbolic links to folders are not followed."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "The glob, e.g. src/**/*.ts."},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "grep",
        "description": (
            "Searches text files for lines matching a Python regular expression (re.search "
            "on each line; use (?i) for case-insensitive) and returns `path:line: text` for "
            f"each, at most {MAX_GREP_MATCHES}. Binary files and .git are skipped."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "The regular expression."},
                "path": {
                    "type": "string",
                    "description": "File or folder to search, relative to the workspace "
                    "(default: the whole workspace).",
                    "default": ".",
                },
                "glob": {
                    "type": "string",
                    "description": "Only search files matching this glob: without a `/` it "
                    "matches the file name (`*.py`), with one the path (`src/**/*.py`).",
                },
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "load_skill",
        "description": (
            "Loads a skill by name: instructions and knowledge for a kind of task, listed "
            "in the system prompt. Read it before doing the work it describes."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The skill's name."},
            },
            "required": ["name"],
        },
    },
]
