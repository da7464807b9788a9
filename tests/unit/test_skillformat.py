"""The Agent Skills format: every problem with its line and a fix, and what a valid
skill parses to."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.skillformat import (
    MAX_DESCRIPTION,
    Problem,
    estimate_tokens,
    load_body,
    parse_skill,
    split_tools,
    template,
)

BODY = "# Do the thing\n\n1. First step.\n2. Second step.\n"


def skill(tmp_path: Path, text: str, name: str = "my-skill") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "SKILL.md").write_text(text, encoding="utf-8")
    return folder


def front(fields: str, body: str = BODY) -> str:
    return f"---\n{fields}---\n\n{body}"


GOOD = "name: my-skill\ndescription: Does the thing when asked.\n"


def problems(folder: Path) -> list[Problem]:
    doc, found = parse_skill(folder)
    assert doc is None
    assert found
    return found


def test_good_skill_with_computed_tokens(tmp_path: Path) -> None:
    folder = skill(
        tmp_path,
        front(
            GOOD + "license: MIT\nallowed-tools: Read, Bash(git status:*)\n"
            "compatibility: Needs git.\n"
            "metadata:\n  domains: [testing]\n  languages: [python, c++]\n"
            "  secrets: [GITHUB_TOKEN]\n  author: someone\n"
        ),
    )
    (folder / "scripts").mkdir()
    (folder / "scripts" / "check.py").write_text("print()\n")
    (folder / ".hidden").write_text("x")
    doc, found = parse_skill(folder)
    assert found == []
    assert doc is not None
    assert doc.name == "my-skill"
    assert doc.description == "Does the thing when asked."
    assert doc.license == "MIT"
    assert doc.allowed_tools == ("Read", "Bash(git status:*)")
    assert doc.compatibility == "Needs git."
    assert doc.domains == ("testing",)
    assert doc.languages == ("python", "c++")
    assert doc.secrets == ("GITHUB_TOKEN",)
    assert doc.body == BODY.rstrip()
    assert doc.tokens == estimate_tokens(BODY.rstrip())
    assert doc.files == ("scripts/check.py",)


def test_declared_tokens_win_and_minimal_skill_has_defaults(tmp_path: Path) -> None:
    doc, _ = parse_skill(skill(tmp_path, front(GOOD + "metadata:\n  tokens: 900\n")))
    assert doc is not None and doc.tokens == 900
    doc, _ = parse_skill(skill(tmp_path, front(GOOD.replace("my-skill", "bare")), "bare"))
    assert doc is not None
    assert (doc.license, doc.allowed_tools, doc.domains, doc.secrets) == ("", (), (), ())


def test_estimate_tokens_rounds_up() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# no frontmatter\n", 1, "no frontmatter"),
        ("", 1, "no frontmatter"),
        ("---\nname: my-skill\n# body\n", 1, "frontmatter is not closed"),
        ("---\nname: my-skill\ndescription: [unclosed\n---\nbody\n", 3, "YAML syntax error"),
        ("---\nname: my-skill\ndescription: a: b\n---\nbody\n", 3, "YAML syntax error"),
        ("---\n- a list\n---\nbody\n", 2, "frontmatter is not a mapping"),
        ("---\n---\nbody\n", 2, "frontmatter is not a mapping"),
    ],
)
def test_malformed_frontmatter(tmp_path: Path, text: str, line: int, message: str) -> None:
    found = problems(skill(tmp_path, text))
    assert found[0].line == line
    assert found[0].message.startswith(message)
    assert found[0].fix


def test_missing_file_and_empty_body(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    [missing] = problems(tmp_path / "empty")
    assert (missing.line, missing.message) == (0, "missing SKILL.md")
    assert str(missing).startswith(f"{tmp_path / 'empty' / 'SKILL.md'}: missing SKILL.md: ")
    [empty] = problems(skill(tmp_path, front(GOOD, body="\n  \n")))
    assert (empty.line, empty.message) == (4, "the body is empty")


def test_name_must_match_folder_and_be_lowercase_hyphen(tmp_path: Path) -> None:
    found = problems(skill(tmp_path, front(GOOD.replace("my-skill", "other")), "my-skill"))
    assert [(p.line, p.message) for p in found] == [
        (2, "name 'other' differs from its folder 'my-skill'")
    ]
    found = problems(skill(tmp_path, front(GOOD.replace("my-skill", "Foo_Bar")), "Foo_Bar"))
    assert str(found[0]) == (
        f"{tmp_path / 'Foo_Bar' / 'SKILL.md'}:2: name 'Foo_Bar' is not lowercase-hyphen: "
        "use lowercase letters, digits and hyphens, e.g. foo-bar"
    )
    for bad in ("-lead", "trail-", "dou--ble", "a" * 65):
        found = problems(skill(tmp_path, front(GOOD.replace("my-skill", bad)), bad))
        assert len(found) == 1, bad


def test_required_keys(tmp_path: Path) -> None:
    found = problems(skill(tmp_path, front("license: MIT\n")))
    assert [(p.line, p.message) for p in found] == [
        (1, "name is missing"),
        (1, "description is missing"),
    ]
    assert "my-skill" in found[0].fix
    found = problems(skill(tmp_path, front("name: 12\ndescription: ''\n"), "x"))
    assert [p.message for p in found] == [
        "name must be a string, not a number",
        "description is empty",
    ]


def test_description_limits(tmp_path: Path) -> None:
    long = "x" * (MAX_DESCRIPTION + 1)
    [p] = problems(skill(tmp_path, front(f"name: my-skill\ndescription: {long}\n")))
    assert p.line == 3
    assert p.message == "description is 1025 characters, over the limit of 1024"
    [p] = problems(skill(tmp_path, front("name: a\ndescription: Use for <html> files.\n"), "a"))
    assert p.message == "description contains angle brackets"


def test_unknown_key_names_the_allowed_ones(tmp_path: Path) -> None:
    found = problems(skill(tmp_path, front(GOOD + "version: 2\ndomains: [x]\n")))
    assert [(p.line, p.message) for p in found] == [
        (4, "unknown key 'version'"),
        (5, "unknown key 'domains'"),
    ]
    assert "name, description, license, allowed-tools, compatibility, metadata" in found[0].fix
    assert "under metadata" in found[1].fix


def test_duplicate_key(tmp_path: Path) -> None:
    [p] = problems(skill(tmp_path, front(GOOD + "name: my-skill\n")))
    assert (p.line, p.message) == (4, "duplicate key 'name'")


def test_optional_keys_types(tmp_path: Path) -> None:
    found = problems(
        skill(
            tmp_path,
            front(
                GOOD + "license: 2.0\nallowed-tools: Bash(git\ncompatibility: " + "c" * 501 + "\n"
            ),
        )
    )
    assert [(p.line, p.message.split(",")[0]) for p in found] == [
        (4, "license must be a string"),
        (5, "allowed-tools has unbalanced parentheses"),
        (6, "compatibility is 501 characters"),
    ]
    text = front(GOOD.replace("my-skill", "b") + "allowed-tools: [1]\n")
    found = problems(skill(tmp_path, text, "b"))
    assert found[0].message == "allowed-tools has an item that is not a tool name"


def test_bad_metadata_types(tmp_path: Path) -> None:
    found = problems(
        skill(
            tmp_path,
            front(
                GOOD + "metadata:\n  domains: testing\n  languages: [Python, ok]\n"
                "  tokens: 0\n  secrets: [github_token, OK_1]\n  anything: [goes, here]\n"
            ),
        )
    )
    assert [(p.line, p.message) for p in found] == [
        (5, "metadata.domains must be a list, not str"),
        (6, "metadata.languages: 'Python' is not a lowercase word"),
        (7, "metadata.tokens must be a positive whole number, not 0"),
        (8, "metadata.secrets: 'github_token' is not an environment variable name"),
    ]
    [p] = problems(skill(tmp_path, front(GOOD.replace("my-skill", "m") + "metadata: [a]\n"), "m"))
    assert (p.line, p.message) == (4, "metadata must be a mapping, not a list")
    [p] = problems(
        skill(tmp_path, front(GOOD.replace("my-skill", "t") + "metadata:\n  tokens: true\n"), "t")
    )
    assert p.message == "metadata.tokens must be a positive whole number, not True"


def test_every_problem_at_once(tmp_path: Path) -> None:
    found = problems(skill(tmp_path, front("name: Bad\ndescription: <x>\nextra: 1\n", body="")))
    assert [p.line for p in found] == [2, 2, 3, 4, 5]


def test_split_tools() -> None:
    assert split_tools("Read Grep") == ("Read", "Grep")
    assert split_tools("Read, Grep,Bash(git log:*)") == ("Read", "Grep", "Bash(git log:*)")
    assert split_tools("Bash(a)) x") is None


def test_template_is_valid(tmp_path: Path) -> None:
    folder = skill(tmp_path, template("new-skill"), "new-skill")
    doc, found = parse_skill(folder)
    assert found == []
    assert doc is not None and doc.name == "new-skill"
    assert doc.domains == () and "## Steps" in doc.body
    with pytest.raises(ValueError, match="lowercase-hyphen"):
        template("Not Valid")


def test_load_body_lists_bundled_files(tmp_path: Path) -> None:
    folder = skill(tmp_path, front(GOOD))
    assert load_body(folder) == BODY.rstrip()
    (folder / "reference.md").write_text("ref\n")
    body = load_body(folder)
    assert body.startswith(BODY.rstrip())
    assert body.endswith(f"Bundled files, under {folder.resolve()}:\n- reference.md")
