"""`stigmer skills ...` without a daemon: validate, new, and list/show computed from
the shipped folder and the user's (STIGMER_HOME/config/skills)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STIGMER = str(Path(sys.executable).parent / "stigmer")

GOOD = """---
name: {name}
description: Follow the house rules for this repository. Use when editing any file here.
metadata:
  domains: [house]
  languages: [python]
---

# House rules

1. Keep functions short.
2. Run the tests before you finish.
"""


def stigmer(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "STIGMER_"))}
    env["STIGMER_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    result = subprocess.run(
        [STIGMER, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr
    return result


def write_skill(root: Path, folder: str, text: str) -> Path:
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "SKILL.md").write_text(text)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def user_skills(home: Path) -> Path:
    return home / "config" / "skills"


# -- validate -----------------------------------------------------------------------


def test_validate_a_good_skill_by_folder_and_by_file(home: Path, tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "house-rules", GOOD.format(name="house-rules"))
    for path in (folder, folder / "SKILL.md"):
        result = stigmer(home, "skills", "validate", str(path))
        assert (result.returncode, result.stdout) == (0, "1 skill checked, 0 problems\n")


def test_validate_dot_inside_a_skill_folder(home: Path, tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "house-rules", GOOD.format(name="house-rules"))
    result = stigmer(home, "skills", "validate", ".", cwd=folder)
    assert (result.returncode, result.stdout) == (0, "1 skill checked, 0 problems\n")


def test_validate_the_shipped_skills(home: Path) -> None:
    import skills

    result = stigmer(home, "skills", "validate", str(Path(skills.__file__).parent))
    assert result.returncode == 0, result.stdout
    assert result.stdout.endswith(" skills checked, 0 problems\n")
    assert int(result.stdout.split()[0]) >= 7


LONG = "x" * 1100

BAD = [
    pytest.param(
        "---\nname: bad-one\ndescription: [unclosed\n---\n\nBody.\n",
        3,
        "YAML syntax error",
        id="malformed-yaml",
    ),
    pytest.param("# No frontmatter\n\nBody.\n", 1, "no frontmatter", id="no-frontmatter"),
    pytest.param(
        "---\nname: bad-one\ndescription: d\n\nBody.\n",
        1,
        "frontmatter is not closed",
        id="unclosed",
    ),
    pytest.param(
        "---\nname: other-name\ndescription: Does things.\n---\n\nBody.\n",
        2,
        "name 'other-name' differs from its folder 'bad-one'",
        id="name-differs-from-folder",
    ),
    pytest.param(
        f"---\nname: bad-one\ndescription: {LONG}\n---\n\nBody.\n",
        3,
        "description is 1100 characters, over the limit of 1024",
        id="overlong-description",
    ),
    pytest.param(
        "---\nname: bad-one\ndescription: Does things.\ndomains: [x]\n---\n\nBody.\n",
        4,
        "unknown key 'domains'",
        id="unknown-key",
    ),
    pytest.param(
        "---\nname: bad-one\ndescription: Use <b>this</b>.\n---\n\nBody.\n",
        3,
        "description contains angle brackets",
        id="angle-brackets",
    ),
    pytest.param(
        "---\nname: bad-one\ndescription: Does things.\n---\n", 4, "the body is empty", id="no-body"
    ),
    pytest.param(
        "---\nname: bad-one\n---\n\nBody.\n", 1, "description is missing", id="no-description"
    ),
    pytest.param(
        "---\nname: bad-one\ndescription: D.\nmetadata:\n  secrets: [lower]\n---\n\nBody.\n",
        5,
        "metadata.secrets: 'lower' is not an environment variable name",
        id="bad-secret-name",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_validate_reports_each_kind_of_problem_with_line_and_fix(
    home: Path, tmp_path: Path, text: str, line: int, message: str
) -> None:
    folder = write_skill(tmp_path, "bad-one", text)
    result = stigmer(home, "skills", "validate", str(folder))
    assert result.returncode == 1
    *problems, last = result.stdout.splitlines()
    assert last == "1 skill checked, 1 problem"
    [problem] = problems
    assert problem.startswith(f"{folder / 'SKILL.md'}:{line}: {message}")
    # file:line: message: fix
    assert len(problem.split(": ")) >= 3
    report = json.loads(stigmer(home, "skills", "validate", "--json", str(folder)).stdout)
    [found] = report["skills"][0]["problems"]
    assert found["line"] == line and message in found["message"] and found["fix"]


def test_validate_a_folder_without_skill_md(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-skill"
    empty.mkdir()
    result = stigmer(home, "skills", "validate", str(empty))
    assert result.returncode == 1
    assert result.stdout == (
        f"{empty / 'SKILL.md'}: missing SKILL.md: create it, e.g. with `stigmer skills new NAME`\n"
        "1 skill checked, 1 problem\n"
    )


def test_validate_several_at_once(home: Path, tmp_path: Path) -> None:
    root = tmp_path / "many"
    write_skill(root, "good-one", GOOD.format(name="good-one"))
    write_skill(root, "bad-one", "---\nname: wrong\ndescription: D.\nextra: 1\n---\n\nBody.\n")
    (root / "no-file").mkdir()
    (root / ".hidden").mkdir()
    single = write_skill(tmp_path, "lone", "---\nname: lone\n---\n\nBody.\n")
    result = stigmer(home, "skills", "validate", str(root), str(single / "SKILL.md"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-1] == "4 skills checked, 4 problems"
    assert [line.split(":")[0] for line in lines[:-1]] == [
        str(root / "bad-one" / "SKILL.md"),
        str(root / "bad-one" / "SKILL.md"),
        str(root / "no-file" / "SKILL.md"),
        str(single / "SKILL.md"),
    ]
    report = json.loads(
        stigmer(home, "skills", "validate", "--json", str(root), str(single)).stdout
    )
    assert report["checked"] == 4 and report["problems"] == 4
    assert {s["name"]: s["valid"] for s in report["skills"]} == {
        "bad-one": False,
        "good-one": True,
        "no-file": False,
        "lone": False,
    }


def test_validate_a_missing_path_is_exit_2_and_checks_nothing(home: Path, tmp_path: Path) -> None:
    good = write_skill(tmp_path, "good-one", GOOD.format(name="good-one"))
    result = stigmer(home, "skills", "validate", str(good), str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: no such file or folder: {tmp_path / 'nope'}\n"


def test_validate_another_file_is_exit_2(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "notes.md"
    other.write_text("hi")
    result = stigmer(home, "skills", "validate", str(other))
    assert result.returncode == 2 and "not a SKILL.md" in result.stderr


def test_validate_needs_a_path(home: Path) -> None:
    assert stigmer(home, "skills", "validate").returncode == 2


# -- new ----------------------------------------------------------------------------


def test_new_writes_a_valid_template_in_the_user_folder(home: Path) -> None:
    result = stigmer(home, "skills", "new", "my-rules")
    path = user_skills(home) / "my-rules" / "SKILL.md"
    assert (result.returncode, result.stdout) == (0, f"{path}\n")
    assert "name: my-rules" in path.read_text()
    check = stigmer(home, "skills", "validate", str(path.parent))
    assert (check.returncode, check.stdout) == (0, "1 skill checked, 0 problems\n")
    listed = json.loads(stigmer(home, "skills", "list", "--json").stdout)
    assert any(s["name"] == "my-rules" and s["source"] == "user" for s in listed)


def test_new_in_a_dir_refuses_to_overwrite_without_force(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "repo" / ".stigmer" / "skills"
    path = target / "deploy-steps" / "SKILL.md"
    first = stigmer(home, "skills", "new", "deploy-steps", "--dir", str(target))
    assert (first.returncode, first.stdout) == (0, f"{path}\n")
    path.write_text("my edits")
    again = stigmer(home, "skills", "new", "deploy-steps", "--dir", str(target))
    assert again.returncode == 2 and again.stdout == ""
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert path.read_text() == "my edits"
    forced = stigmer(home, "skills", "new", "deploy-steps", "--dir", str(target), "--force")
    assert forced.returncode == 0 and "name: deploy-steps" in path.read_text()
    assert stigmer(home, "skills", "validate", str(path)).returncode == 0


@pytest.mark.parametrize(
    ("name", "fix"), [("My_Rules", "e.g. my-rules"), ("a" * 65, "at most 64 characters")]
)
def test_new_with_a_bad_name_is_exit_2_with_the_fix(home: Path, name: str, fix: str) -> None:
    result = stigmer(home, "skills", "new", name)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and fix in result.stderr
    assert not user_skills(home).exists()


# -- list and show without a daemon ------------------------------------------------------


def test_list_without_a_daemon_shows_shipped_user_overrides_and_invalid(home: Path) -> None:
    write_skill(user_skills(home), "house-rules", GOOD.format(name="house-rules"))
    write_skill(user_skills(home), "python-style", GOOD.format(name="python-style"))
    write_skill(user_skills(home), "broken", "---\nname: broken\n---\n\nBody.\n")
    result = stigmer(home, "skills", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert {"code-review", "debugging", "git-workflow", "house-rules", "broken"} <= set(listed)
    assert listed["debugging"]["source"] == "shipped" and listed["debugging"]["overrides"] == []
    assert listed["python-style"]["source"] == "user"
    assert listed["python-style"]["overrides"] == ["shipped"]
    house = listed["house-rules"]
    assert house["domains"] == ["house"] and house["languages"] == ["python"]
    assert house["tokens"] > 0 and house["body"] == "" and house["problems"] == []
    assert listed["broken"]["problems"] and "description is missing" in str(
        listed["broken"]["problems"]
    )
    table = stigmer(home, "skills", "list")
    assert table.returncode == 0
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert table.stdout.split()[:5] == ["NAME", "SOURCE", "TOKENS", "DOMAINS", "DESCRIPTION"]
    assert "user (overrides shipped)" in rows["python-style"]
    assert "invalid: 1 problem" in rows["broken"]
    assert "house" in rows["house-rules"] and "Follow the house rules" in rows["house-rules"]
    assert "broken" in table.stderr


def test_show_without_a_daemon(home: Path) -> None:
    write_skill(user_skills(home), "house-rules", GOOD.format(name="house-rules"))
    result = stigmer(home, "skills", "show", "house-rules")
    assert result.returncode == 0, result.stderr
    assert "description    Follow the house rules" in result.stdout
    assert "source         user" in result.stdout
    assert result.stdout.endswith(
        "# House rules\n\n1. Keep functions short.\n2. Run the tests before you finish.\n"
    )
    shown = json.loads(stigmer(home, "skills", "show", "house-rules", "--json").stdout)
    assert shown["name"] == "house-rules" and shown["body"].startswith("# House rules")
    assert shown["path"] == str(user_skills(home) / "house-rules")
    shipped = json.loads(stigmer(home, "skills", "show", "debugging", "--json").stdout)
    assert shipped["source"] == "shipped" and len(shipped["body"]) > 500


def test_show_an_invalid_skill_lists_its_problems(home: Path) -> None:
    write_skill(user_skills(home), "broken", "---\nname: broken\n---\n\nBody.\n")
    result = stigmer(home, "skills", "show", "broken")
    assert result.returncode == 0
    assert "invalid: 1 problem" in result.stdout and "description is missing" in result.stdout


def test_show_an_unknown_skill_is_exit_1(home: Path) -> None:
    result = stigmer(home, "skills", "show", "nosuch")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: no skill 'nosuch'; skills: code-review")
