"""Malformed config files, task files and skills: every one gets a message naming the
problem (the config key, the task file's field and line, the skill's file and line),
and nothing crashes.

Each kind has a catalogue of hand-made bad files (every config key included) and a
Hypothesis property over generated ones. Crashes the fuzz once found (a config that is
not UTF-8, NaN for a number key, values nested too deeply for the parsers, YAML scalars
PyYAML cannot construct) keep a test each with the exact input, and the fuzz fails on
any crash.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.task_file import CONSTRAINT_KEYS, SCOPE_KEYS, TOP_KEYS, Problem, TaskFile, parse_task_file
from daemon import config as configmod
from protos import skill_service_pb2, skill_service_pb2_grpc, task_pb2, task_service_pb2
from shared.skillformat import SKILL_FILE, SkillDoc, parse_skill
from tests.support import REPO, Daemon, env_for, wait_until, write_config

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

# Inputs tried, by kind.
TRIED: Counter[str] = Counter()

# Deeper than PyYAML's composer and tomllib can recurse (one call per level).
DEEP = "[" * 1000 + "]" * 1000

# --- config.toml ------------------------------------------------------------------------

SECONDS_BAD = ("0", "-1", '"10"', "true", "inf", "-inf", "nan", "[1]")
# Bad values of every key, as TOML; each must be refused naming "section.key".
CONFIG_BAD: dict[str, tuple[str, ...]] = {
    "daemon.tcp_address": ("5", '"localhost"', '"host:99999"', '":80"', '"host:"', "[]"),
    "daemon.min_free_mb": ("-1", "1000001", '"64"', "true", "inf", "nan"),
    "runners.count": ("-1", "65", "1.5", '"2"', "true", "nan", "9223372036854775807"),
    "runners.autorestart": ('"sometimes"', "1", "true", '["always"]'),
    "runners.exitcodes": ("[]", "[256]", "[-1]", '["0"]', "0", "[true]", "[1.0]"),
    "runners.start_timeout_seconds": (*SECONDS_BAD, "601"),
    "runners.heartbeat_timeout_seconds": (*SECONDS_BAD, "3601"),
    "runners.backoff_initial_seconds": (*SECONDS_BAD, "601"),
    "runners.backoff_max_seconds": (*SECONDS_BAD, "3601"),
    "runners.stable_seconds": (*SECONDS_BAD, "86401"),
    "runners.max_failures": ("0", "1001", "2.5", '"5"', "false"),
    "runners.failure_window_seconds": (*SECONDS_BAD, "86401"),
    "runners.stop_grace_seconds": (*SECONDS_BAD, "301"),
    "runners.log_max_bytes": ("4095", "17179869185", '"1MB"', "1e6"),
    "runners.log_backups": ("-1", "101", "1.5"),
    "secrets.required": ('"ANTHROPIC_API_KEY"', '["lower"]', "[1]", '["A B"]', '[""]', "{}"),
    "secrets.wait_seconds": (*SECONDS_BAD, "86401"),
    "tasks.default_timeout_seconds": (*SECONDS_BAD, "86401"),
    "tasks.max_attempts": ("0", "11", "1.5", '"3"'),
    "tasks.workspace_retention_hours": (*SECONDS_BAD, "8761"),
    "agent.model": ('""', "5", '"a\\u0000b"', "[]"),
    "agent.max_tokens": ("0", "128001", '"8k"'),
    "agent.base_url": ('"ftp://x"', '"localhost:11434"', "5"),
    "agent.level": ('"god"', "1", '"Supervised"'),
    "agent.max_turns": ("0", "10001", "1.5"),
    "agent.max_wall_seconds": (*SECONDS_BAD, "86401"),
    "agent.max_total_tokens": ("0", "1000000001", '"1M"'),
    "agent.max_cost_usd": (*SECONDS_BAD, "100001"),
    "agent.approval_timeout_seconds": (*SECONDS_BAD, "86401"),
    "agent.allow": ('"bash"', '[""]', "[1]"),
    "agent.ask": ('"bash"', '[""]', "[1]"),
    "agent.deny": ('"bash"', '[""]', "[1]"),
    "agent.skill_token_budget": ("-1", "1000001", "1.5"),
    "notify.webhook_url": ("5", '"ftp://x"', '"hooks.example.com"', "[]"),
    "notify.webhook_timeout_seconds": ("0", "-1", "301", '"5"', "true", "nan", "inf"),
    "notify.webhook_retries": ("-1", "11", "1.5", '"3"'),
    "notify.command": ('"notify-send hi"', '[""]', "[1]", '["{task_id}"]', '["x", "{nope}"]'),
    "notify.on_states": ("[]", '["RUNNING"]', '"FAILED"', "[1]"),
    "events.max_age_days": ("0", "-1", "36501", '"30"', "inf", "nan"),
    "events.max_per_task": ("0", "1000000001", "1.5"),
    "events.max_events": ("0", "1000000001", "1.5"),
    "events.compact_interval_minutes": ("0", "10081", '"10"', "inf", "nan"),
    "events.max_watcher_lag": ("0", "1000000001", "1.5"),
}
# Float keys checked by daemon/config.py's _number() (test_nan_is_refused_for_every_number_key).
NAN_KEYS = (
    "daemon.min_free_mb",
    *(k for k, v in CONFIG_BAD.items() if v[: len(SECONDS_BAD)] == SECONDS_BAD),
    "events.max_age_days",
    "events.compact_interval_minutes",
)


@dataclass(frozen=True)
class ConfigCase:
    text: bytes
    names: tuple[str, ...]  # the message must hold each

    def __str__(self) -> str:
        return repr(self.text[:80])


def _config_cases() -> list[ConfigCase]:
    cases = []
    for dotted, values in CONFIG_BAD.items():
        section, key = dotted.split(".")
        for value in values:
            cases.append(ConfigCase(f"[{section}]\n{key} = {value}\n".encode(), (dotted,)))
    cases += [
        ConfigCase(b"[runners\ncount = 1\n", ("not valid TOML", "line 1")),
        ConfigCase(b"[runners]\ncount = = 1\n", ("not valid TOML", "line 2")),
        ConfigCase(b"[runners]\ncount = 1\ncount = 2\n", ("not valid TOML", "line 3")),
        ConfigCase(b"[runners]\ncount = 'a\n", ("not valid TOML", "end of document")),
        ConfigCase(b"[runners]\ncount = 1\n[runners]\n", ("not valid TOML", "line 3")),
        ConfigCase(b"just words\n", ("not valid TOML", "line 1")),
        ConfigCase(b'[daemon]\ntcp_address = "\x00"\n', ("not valid TOML",)),
        # A byte-order mark is skipped: the key after it is read (and checked).
        ConfigCase(b"\xef\xbb\xbf[runners]\ncount = 65\n", ("runners.count",)),
        ConfigCase(b"\xef\xbb\xbf[runners\n", ("not valid TOML", "line 1")),
        ConfigCase(b"[runners]\nexitcodes = [0, " + DEEP.encode() + b"]\n", ("runners.exitcodes",)),
        ConfigCase(b"[agent]\nx = " + b"{a = " * 1000 + b"1" + b"}" * 1000 + b"\n", ("line 2",)),
        ConfigCase(b"[runner]\ncount = 1\n", ("unknown section [runner]",)),
        ConfigCase(b"count = 1\n", ("unknown section [count]",)),
        ConfigCase(b"runners = 1\n", ("runners must be a table",)),
        ConfigCase(b"[[runners]]\ncount = 1\n", ("runners must be a table",)),
        ConfigCase(b"[runners]\ncounts = 1\n", ("unknown key runners.counts",)),
        ConfigCase(b"[runners.extra]\nx = 1\n", ("unknown key runners.extra",)),
        ConfigCase(b"[agent]\nmodel = {name = 'x'}\n", ("agent.model",)),
    ]
    return cases


def _run_daemon(home: Path, text: bytes, timeout: float = 20) -> tuple[int, str]:
    """Exit code and stderr of `python -m daemon` on a home with this config file."""
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_bytes(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon"],
        cwd=REPO,
        env=env_for(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=timeout)
        return process.returncode, err
    except subprocess.TimeoutExpired:
        # It took the config and started: stopped cleanly, runners and all.
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        return -1, "[it started instead]\n" + err


def _config_refusal(home: Path, case: ConfigCase, timeout: float = 20) -> str:
    """Why the daemon's answer to `case` falls short, or ""."""
    code, err = _run_daemon(home, case.text, timeout)
    TRIED["config file (daemon)"] += 1
    if code != 1:
        return f"{case}: exit {code}, not 1: {err[-300:]!r}"
    if "Traceback" in err:
        return f"{case}: a traceback: {err[-300:]!r}"
    missing = [n for n in case.names if n not in err]
    if "bad configuration" not in err or missing:
        return f"{case}: the message does not name {missing or 'the problem'}: {err[-300:]!r}"
    return ""


def test_every_config_key_has_bad_values() -> None:
    keys = {f"{s}.{k}" for s, section in configmod._SCHEMA.items() for k in section}
    assert keys == set(CONFIG_BAD), keys ^ set(CONFIG_BAD)


def test_the_daemon_refuses_each_bad_config_naming_the_key(tmp_path: Path) -> None:
    cases = _config_cases()
    homes = [tmp_path / f"h{i}" for i in range(len(cases))]
    with ThreadPoolExecutor(4) as pool:
        failures = [f for f in pool.map(_config_refusal, homes, cases) if f]
    assert not failures, "\n".join(failures)
    # It stopped before making anything (no socket, token or database).
    assert not any((h / "state").exists() for h in homes)


def test_a_config_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    failure = _config_refusal(
        tmp_path, ConfigCase(b"[runners]\ncount = \xff\n", ("config.toml", "UTF-8"))
    )
    assert not failure, failure


def test_nan_is_refused_for_every_number_key(tmp_path: Path) -> None:
    taken = []
    for dotted in NAN_KEYS:
        section, key = dotted.split(".")
        try:
            configmod.parse(f"[{section}]\n{key} = nan\n")
        except configmod.ConfigError as exc:
            assert dotted in str(exc)
        else:
            taken.append(dotted)
    # And the daemon itself refuses one (were it to start: quietly, no TCP, no runner).
    text = b'[daemon]\ntcp_address = ""\n[runners]\ncount = 0\n[secrets]\nrequired = []\n'
    failure = _config_refusal(
        tmp_path, ConfigCase(text + b"[agent]\nmax_cost_usd = nan\n", ("nan",)), timeout=3
    )
    assert not taken and not failure, (taken, failure)


def test_a_deeply_nested_config_value_is_named(tmp_path: Path) -> None:
    text = b"[runners]\ncount = " + DEEP.encode() + b"\n"
    failure = _config_refusal(
        tmp_path, ConfigCase(text, ("line 2", "runners.count", "nested too deeply"))
    )
    assert not failure, failure


def test_a_config_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_bytes(b"\xef\xbb\xbf[runners]\ncount = 3\n")
    assert configmod.load(file).runners == 3
    assert configmod.parse("\ufeff[agent]\nmax_turns = 7\n").agent.max_turns == 7


# Generated config files: TOML built from sections, keys and values.


def _toml_str(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_str(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


SECTIONS = tuple(configmod._SCHEMA)
KEYS = tuple(sorted({k for section in configmod._SCHEMA.values() for k in section}))
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 64, 65, 86400, 86401, 2**63 - 1]),
    st.floats(),
    st.booleans(),
    TEXT,
    st.sampled_from(["", "127.0.0.1:1", "http://x", "FAILED", "supervised", "A_B"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=2)),
    max_leaves=6,
)
DOCS = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS), TEXT),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), VALUES, max_size=3),
    max_size=3,
)


def _toml(doc: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{_toml_str(section)}]\n"
        + "".join(f"{_toml_str(k)} = {_toml_value(v)}\n" for k, v in body.items())
        for section, body in doc.items()
    )


@SETTINGS
@given(
    st.one_of(
        DOCS.map(_toml),
        # Hand-made text around a generated document: cut, or with junk inserted.
        st.tuples(DOCS.map(_toml), st.integers(0, 200), st.one_of(TEXT, st.just(DEEP))).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
        TEXT,
    )
)
def test_generated_configs_are_read_or_named(text: str) -> None:
    TRIED["config file (generated)"] += 1
    try:
        configmod.parse(text)
    except configmod.ConfigError as exc:
        message = str(exc)
        assert message.startswith("config.toml: "), message
        if "not valid TOML" in message:
            assert re.search(r"line \d+|end of document", message), message
        elif "nested too deeply" in message:
            assert re.search(r": line \d+: ", message), message
        else:
            # It names a section or key of the document.
            doc = tomllib.loads(text)
            named = {s for s in doc} | {
                f"{s}.{k}" for s, b in doc.items() if isinstance(b, dict) for k in b
            }
            assert any(n in message for n in named), message


# --- task files (`stigmer task submit`) --------------------------------------------------


@dataclass(frozen=True)
class TaskCase:
    text: str
    path: str  # the field the problem names ("" for the file as a whole)
    line: int | None
    words: str


TASK_CASES = (
    TaskCase("", "", None, "the file is empty"),
    TaskCase("just words\n", "", 1, "must hold fields"),
    TaskCase("- a\n- b\n", "", 1, "must hold fields"),
    TaskCase("goal:\n", "goal", 1, "is empty"),
    TaskCase("goal: '  '\n", "goal", 1, "must not be empty"),
    TaskCase("id: x\n", "goal", None, "missing"),
    TaskCase("goal: x\nfoo: 1\n", "foo", 2, "unknown field"),
    TaskCase("goal: x\ngoal: y\n", "goal", 2, "given twice"),
    TaskCase("goal: 5\n", "goal", 1, "must be a string"),
    TaskCase("goal: [a, b]\n", "goal", 1, "must be a string"),
    TaskCase("goal: x\ndescription: [a]\n", "description", 2, "must be a string"),
    TaskCase("goal: x\nid: " + "a" * 129 + "\n", "id", 2, "at most 128"),
    TaskCase('goal: x\nid: "a\\tb"\n', "id", 2, "one line"),
    TaskCase("goal: x\napplicable_skills: python\n", "applicable_skills", 2, "list of strings"),
    TaskCase("goal: x\napplicable_skills: [Bad_Name]\n", "applicable_skills[0]", 2, "skill name"),
    TaskCase("goal: x\napplicable_skills: ['']\n", "applicable_skills[0]", 2, "must not be empty"),
    TaskCase("goal: x\nlevel: god\n", "level", 2, "expected one of"),
    TaskCase("goal: x\nmodel: ''\n", "model", 2, "must not be empty"),
    TaskCase("goal: x\nscope: [a]\n", "scope", 2, "must be a mapping"),
    TaskCase("goal: x\nscope:\n  other: 1\n", "scope.other", 3, "unknown field"),
    TaskCase(
        "goal: x\nscope:\n  allowed_write_globs: [/abs/**]\n",
        "scope.allowed_write_globs[0]",
        3,
        "relative",
    ),
    TaskCase(
        "goal: x\nscope:\n  allowed_read_globs: src\n",
        "scope.allowed_read_globs",
        3,
        "list of strings",
    ),
    TaskCase("goal: x\nconstraints: 5\n", "constraints", 2, "must be a mapping"),
    TaskCase(
        "goal: x\nconstraints:\n  max_files_changed: -1\n",
        "constraints.max_files_changed",
        3,
        "negative",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  max_files_changed: 4294967296\n",
        "constraints.max_files_changed",
        3,
        "at most",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  max_files_changed: '5'\n",
        "constraints.max_files_changed",
        3,
        "whole number",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  max_files_changed: 1.5\n",
        "constraints.max_files_changed",
        3,
        "whole number",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  max_diff_bytes: 18446744073709551616\n",
        "constraints.max_diff_bytes",
        3,
        "at most",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  timeout_seconds: -1\n",
        "constraints.timeout_seconds",
        3,
        "negative",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  timeout_seconds: .nan\n",
        "constraints.timeout_seconds",
        3,
        "nan",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  timeout_seconds: .inf\n",
        "constraints.timeout_seconds",
        3,
        "at most",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  timeout_seconds: yes\n",
        "constraints.timeout_seconds",
        3,
        "number of seconds",
    ),
    TaskCase(
        "goal: x\nconstraints:\n  denylisted_commands: ['']\n",
        "constraints.denylisted_commands[0]",
        3,
        "must not be empty",
    ),
    TaskCase("goal: x\nworkspace: a\nrepo: b\n", "repo", 3, "not both"),
    TaskCase("goal: x\nbranch: main\n", "branch", 2, "needs `repo`"),
    TaskCase("goal: x\nworkspace: 5\n", "workspace", 2, "must be a string"),
    TaskCase("goal: [a\n", "", 2, "not valid YAML"),
    TaskCase("goal: x\n\tbad: tab\n", "", 2, "not valid YAML"),
    TaskCase("goal: x\n---\ngoal: y\n", "", 2, "not valid YAML"),
    TaskCase("goal: *nope\n", "", 1, "not valid YAML"),
    TaskCase("goal: x\n? [a]\n: b\n", "", 2, "field names must be text"),
    TaskCase("goal: x\n1: y\n", "", 2, "field names must be text"),
    TaskCase("goal: !custom x\n", "goal", 1, "must be a string"),
    TaskCase("goal: x\u0000\n", "", None, "not valid YAML: unacceptable character #x0000"),
)


@pytest.mark.parametrize("case", TASK_CASES, ids=lambda c: repr(c.text[:30]))
def test_each_bad_task_file_names_its_field_and_line(case: TaskCase) -> None:
    TRIED["task file (catalogue)"] += 1
    result = parse_task_file(case.text)
    assert isinstance(result, list) and result, result
    described = [p.describe("task.yaml") for p in result]
    assert any(
        p.path == case.path and p.line == case.line and case.words in p.message for p in result
    ), described
    for problem in result:
        assert problem.message
        assert problem.describe("task.yaml").startswith("task.yaml")


# Generated task files: YAML documents built from the fields and hostile values.

HOSTILE_YAML = (
    "!!int abc",
    "!!float x",
    "!!timestamp x",
    "!!binary '@@'",
    "!!python/object:os.system x",
    "2024-13-01",
    "2024-02-30",
    "&a [*a]",
    "*undefined",
    "{a: 1, a: 2}",
    "[",
    "'unclosed",
    "@reserved",
    "`reserved",
    "%",
    "- - -",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1_000",
    "~",
    "yes",
    "No",
    "<<",
    "=",
    "? x",
    "| \n  block",
    "> \n  folded",
    "2024-13-01T25:00:00",
    "!custom x",
    DEEP,
    "{a: " + DEEP + "}",
)
YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    TEXT,
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(TEXT, st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)


def _section(keys: tuple[str, ...]) -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), TEXT), YAML_VALUES, max_size=4)


TASK_DOCS = st.dictionaries(
    st.one_of(st.sampled_from(TOP_KEYS), TEXT),
    st.one_of(YAML_VALUES, _section(SCOPE_KEYS), _section(CONSTRAINT_KEYS)),
    max_size=6,
)


def _yaml_text(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@st.composite
def yaml_texts(draw: st.DrawFn, docs: st.SearchStrategy[Any]) -> str:
    """A generated document as YAML, then maybe spoiled: a hostile value put in place
    of one, a line cut, junk inserted."""
    text = _yaml_text(draw(docs))
    how = draw(st.sampled_from(("as is", "hostile", "cut", "junk", "raw")))
    lines = text.splitlines(keepends=True)
    if how == "hostile" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        head, sep, _ = lines[at].partition(": ")
        lines[at] = f"{head}{sep or ': '}{draw(st.sampled_from(HOSTILE_YAML))}\n"
    elif how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    elif how == "junk":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.one_of(TEXT, st.sampled_from(HOSTILE_YAML))) + text[at:]
    elif how == "raw":
        return draw(TEXT)
    return "".join(lines)


@SETTINGS
@given(yaml_texts(TASK_DOCS))
def test_generated_task_files_are_read_or_every_problem_named(text: str) -> None:
    TRIED["task file (generated)"] += 1
    result = parse_task_file(text)
    if isinstance(result, TaskFile):
        assert result.goal.strip()
        return
    assert result, "neither a task nor a problem"
    count = text.count("\n") + 1
    fields = {"goal"}  # a missing goal is named too
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        root = None
    if isinstance(root, yaml.MappingNode):
        fields |= {str(k.value) for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
    for problem in result:
        assert isinstance(problem, Problem) and problem.message
        assert problem.line is None or 1 <= problem.line <= count + 1, (problem, count)
        # The file as a whole, or a field the file has.
        path = problem.path
        assert not path or any(path == f or path.startswith((f + ".", f + "[")) for f in fields), (
            problem,
            text,
        )


@pytest.mark.parametrize(
    "text",
    [
        "goal: x\nid: 2024-13-01\n",
        "goal: x\n2024-13-01: y\n",
        "goal: !!int abc\n",
        "goal: x\nconstraints:\n  max_files_changed: !!float x\n",
        "goal: !!timestamp x\n",
        "goal: x\ndescription: " + "[" * 1000 + "]" * 1000 + "\n",
    ],
    ids=["bad-date", "bad-date-key", "int-tag", "float-tag", "timestamp-tag", "deep"],
)
def test_yaml_values_that_crash_the_task_file_parser(text: str) -> None:
    result = parse_task_file(text)
    assert isinstance(result, list) and result


# --- skills (SKILL.md) -------------------------------------------------------------------


def _skill(root: Path, text: str | bytes, name: str = "demo") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / SKILL_FILE
    if isinstance(text, bytes):
        file.write_bytes(text)
    else:
        file.write_text(text, encoding="utf-8")
    return folder


def _front(body: str) -> str:
    return f"---\n{body}---\nSteps.\n"


OK_HEAD = "name: demo\ndescription: Does things.\n"


@dataclass(frozen=True)
class SkillCase:
    text: str | bytes
    line: int
    words: str


SKILL_CASES = (
    SkillCase("no frontmatter\n", 1, "no frontmatter"),
    SkillCase("---\nname: demo\n", 1, "not closed"),
    SkillCase(f"---\n{OK_HEAD}---\n", 4, "the body is empty"),
    SkillCase(_front("name: [demo\n"), 2, "YAML syntax error"),
    SkillCase(_front("- a\n"), 2, "not a mapping"),
    SkillCase(_front("just text\n"), 2, "not a mapping"),
    SkillCase(_front(OK_HEAD + "foo: 1\n"), 4, "unknown key 'foo'"),
    SkillCase(_front(OK_HEAD + "domains: [x]\n"), 4, "under metadata"),
    SkillCase(_front("description: Does things.\n"), 1, "name is missing"),
    SkillCase(_front("name: Demo_X\ndescription: d\n"), 2, "not lowercase-hyphen"),
    SkillCase(_front("name: other\ndescription: d\n"), 2, "differs from its folder"),
    SkillCase(_front("name: " + "a" * 65 + "\ndescription: d\n"), 2, "over the limit of 64"),
    SkillCase(_front("name: 5\ndescription: d\n"), 2, "name must be a string"),
    SkillCase(_front("name: demo\n"), 1, "description is missing"),
    SkillCase(_front("name: demo\ndescription: ''\n"), 3, "description is empty"),
    SkillCase(_front("name: demo\ndescription: [a]\n"), 3, "description must be a string"),
    SkillCase(_front("name: demo\ndescription: " + "d" * 1025 + "\n"), 3, "over the limit"),
    SkillCase(_front("name: demo\ndescription: use <b>\n"), 3, "angle brackets"),
    SkillCase(_front(OK_HEAD + "license: 5\n"), 4, "license must be a string"),
    SkillCase(_front(OK_HEAD + "compatibility: " + "c" * 501 + "\n"), 4, "over the limit of 500"),
    SkillCase(_front(OK_HEAD + "allowed-tools: 5\n"), 4, "must be a list or a string"),
    SkillCase(_front(OK_HEAD + "allowed-tools: ['']\n"), 4, "not a tool name"),
    SkillCase(_front(OK_HEAD + "allowed-tools: Bash(git\n"), 4, "unbalanced parentheses"),
    SkillCase(_front(OK_HEAD + "metadata: 5\n"), 4, "metadata must be a mapping"),
    SkillCase(_front(OK_HEAD + "metadata:\n  domains: python\n"), 5, "must be a list"),
    SkillCase(_front(OK_HEAD + "metadata:\n  domains: [Py Thon]\n"), 5, "lowercase word"),
    SkillCase(_front(OK_HEAD + "metadata:\n  languages: [1]\n"), 5, "lowercase word"),
    SkillCase(_front(OK_HEAD + "metadata:\n  tokens: 0\n"), 5, "positive whole number"),
    SkillCase(_front(OK_HEAD + "metadata:\n  tokens: true\n"), 5, "positive whole number"),
    SkillCase(_front(OK_HEAD + "metadata:\n  tokens: .nan\n"), 5, "positive whole number"),
    SkillCase(_front(OK_HEAD + "metadata:\n  secrets: [lower]\n"), 5, "environment variable"),
    SkillCase(_front(OK_HEAD + "name: demo\n"), 4, "duplicate key 'name'"),
    SkillCase(
        _front(OK_HEAD + "metadata:\n  domains: []\n  domains: []\n"),
        6,
        "duplicate key 'metadata.domains'",
    ),
    SkillCase(_front(OK_HEAD + "x: *nope\n"), 4, "YAML syntax error"),
    SkillCase(_front(OK_HEAD + "x: 'a\u0000b'\n"), 2, "YAML"),
    SkillCase(b"---\nname: demo\ndescription: \xff\n---\nbody\n", 0, "not UTF-8"),
)


@pytest.mark.parametrize("case", SKILL_CASES, ids=lambda c: repr(c.text[-40:]))
def test_each_bad_skill_names_its_file_and_line(case: SkillCase, tmp_path: Path) -> None:
    TRIED["skill (catalogue)"] += 1
    folder = _skill(tmp_path, case.text)
    doc, problems = parse_skill(folder)
    assert doc is None and problems
    shown = [str(p) for p in problems]
    assert any(p.line == case.line and case.words in str(p) for p in problems), shown
    for problem in problems:
        assert problem.file == str(folder / SKILL_FILE)
        assert problem.message and problem.fix
        assert str(problem).startswith(problem.file)


def test_folders_without_a_skill_are_named(tmp_path: Path) -> None:
    TRIED["skill (catalogue)"] += 3
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "dir" / SKILL_FILE).mkdir(parents=True)
    for name, words in (("file", "not a folder"), ("empty", "missing"), ("dir", "missing")):
        doc, problems = parse_skill(tmp_path / name)
        assert doc is None and [p.line for p in problems] == [0], problems
        assert words in problems[0].message and problems[0].file.endswith(SKILL_FILE)


# Generated skills: frontmatter built from the keys and hostile values, or raw text.

SKILL_KEYS = ("name", "description", "license", "allowed-tools", "compatibility", "metadata")
META_KEYS = ("domains", "languages", "tokens", "secrets")
SKILL_DOCS = st.dictionaries(
    st.one_of(st.sampled_from(SKILL_KEYS), TEXT),
    st.one_of(
        YAML_VALUES,
        st.sampled_from(["fuzz-skill", "Fuzz Skill", "Does things.", "Read, Bash(git:*)"]),
        _section(META_KEYS),
    ),
    max_size=6,
)


@st.composite
def skill_files(draw: st.DrawFn) -> str:
    front = draw(yaml_texts(SKILL_DOCS))
    body = draw(st.sampled_from(("Steps.\n", "", "\n\n", "---\nmore\n")))
    shape = draw(st.sampled_from(("whole", "whole", "no close", "no open", "raw")))
    if shape == "no close":
        return f"---\n{front}"
    if shape == "no open":
        return f"{front}---\n{body}"
    if shape == "raw":
        return draw(TEXT)
    return f"---\n{front}---\n{body}"


@pytest.fixture(scope="module")
def skill_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("skills")


@SETTINGS
@given(skill_files())
def test_generated_skills_parse_or_every_problem_named(skill_root: Path, text: str) -> None:
    TRIED["skill (generated)"] += 1
    folder = _skill(skill_root, text, "fuzz-skill")
    doc, problems = parse_skill(folder)
    if doc is not None:
        assert isinstance(doc, SkillDoc) and not problems
        assert doc.name == "fuzz-skill" and doc.body.strip()
        return
    assert problems, "neither a skill nor a problem"
    count = text.count("\n") + 1
    for problem in problems:
        assert problem.file == str(folder / SKILL_FILE)
        assert 0 <= problem.line <= count + 1, (problem, count)
        assert problem.message and problem.fix


@pytest.mark.parametrize(
    "text",
    [
        _front(OK_HEAD + "metadata:\n  since: 2024-13-01\n"),
        _front("name: demo\ndescription: 2024-02-30\n"),
        _front(OK_HEAD + "license: !!int abc\n"),
        _front(OK_HEAD + "license: !!timestamp x\n"),
        _front(OK_HEAD + "metadata: " + "[" * 1000 + "]" * 1000 + "\n"),
    ],
    ids=["bad-date-in-metadata", "bad-date", "int-tag", "timestamp-tag", "deep"],
)
def test_yaml_values_that_crash_the_skill_parser(text: str, tmp_path: Path) -> None:
    doc, problems = parse_skill(_skill(tmp_path, text))
    assert doc is None and problems


# What one such skill does to a running daemon.

BAD_DATE_SKILL = _front("name: bad-date\ndescription: d\nmetadata:\n  since: 2024-13-01\n")


@pytest.fixture
def quiet_home(home: Path) -> Path:
    write_config(
        home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n'
        # An agent task waits no more than a second for its provider key: it then fails,
        # having been claimed (skills chosen) all the same.
        "[secrets]\nrequired = []\nwait_seconds = 1\n"
        '[agent]\nbase_url = "http://127.0.0.1:9"\n',
    )
    return home


async def test_a_bad_user_skill_is_listed_with_its_problems(
    daemon: Daemon, quiet_home: Path
) -> None:
    _skill(quiet_home / "config" / "skills", BAD_DATE_SKILL, "bad-date")
    client = await daemon.start()
    skills = skill_service_pb2_grpc.SkillServiceStub(client.channel)
    try:
        listed = await skills.ListSkills(skill_service_pb2.ListSkillsRequest(), metadata=client.md)
    except grpc.aio.AioRpcError as exc:
        pytest.fail(f"ListSkills: {exc.code().name} {exc.details()}")
    bad = [s for s in listed.skills if s.name == "bad-date"]
    assert bad and bad[0].problems


async def test_a_bad_workspace_skill_does_not_stop_the_queue(
    daemon: Daemon, quiet_home: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    _skill(workspace / ".stigmer" / "skills", BAD_DATE_SKILL, "bad-date")
    client = await daemon.start()
    agent = await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(
            spec=task_pb2.TaskSpec(
                agent=task_pb2.AgentSpec(prompt="say hello"),
                workspace=task_pb2.Workspace(path=str(workspace)),
            )
        ),
        metadata=client.md,
    )
    after = await client.create(["true"])
    ended = (
        task_pb2.TASK_STATE_SUCCEEDED,
        task_pb2.TASK_STATE_FAILED,
        task_pb2.TASK_STATE_CANCELLED,
        task_pb2.TASK_STATE_TIMED_OUT,
    )

    async def both_ended() -> bool:
        return all([(await client.get(t.id)).state in ended for t in (agent, after)])

    await wait_until(both_ended, 10, "the agent task and the task behind it to end")
    assert (await client.get(after.id)).state == task_pb2.TASK_STATE_SUCCEEDED
    # The agent task was prepared (its skills chosen): it ended for want of its key.
    error = (await client.get(agent.id)).result.error
    assert "could not be prepared" not in error and "ANTHROPIC_API_KEY" in error, error


# --- the count -----------------------------------------------------------------------------


def test_zz_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Printed last: how many malformed files of each kind were tried."""
    total = sum(TRIED.values())
    with capsys.disabled():
        parts = ", ".join(f"{kind} {count}" for kind, count in sorted(TRIED.items()))
        print(f"\nmalformed files: {total} inputs tried ({parts})")
