"""The skills shipped in skills/: each one valid, named after its folder, with a
description that fits and the domains the registry picks it by."""

from __future__ import annotations

from pathlib import Path

import pytest

import skills
from shared.skillformat import MAX_DESCRIPTION, SKILL_FILE, parse_skill

SHIPPED = Path(skills.__file__).resolve().parent
EXPECTED = {
    "test-driven-development",
    "python-style",
    "git-workflow",
    "yaml-validation",
    "error-reporting",
    "code-review",
    "debugging",
}
FOLDERS = sorted(p for p in SHIPPED.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def test_the_seven_expected_skills_are_shipped() -> None:
    names = {folder.name for folder in FOLDERS}
    assert names >= EXPECTED, f"missing: {sorted(EXPECTED - names)}"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_a_shipped_skill_is_valid(folder: Path) -> None:
    assert (folder / SKILL_FILE).is_file()
    doc, problems = parse_skill(folder)
    assert problems == [], "\n".join(str(p) for p in problems)
    assert doc is not None
    assert doc.name == folder.name
    assert 0 < len(doc.description) <= MAX_DESCRIPTION
    assert "<" not in doc.description and ">" not in doc.description
    assert doc.domains, f"{folder.name} has no metadata.domains"
    # Substance a model can act on, not a stub.
    assert doc.tokens >= 200 and len(doc.body.splitlines()) >= 20
