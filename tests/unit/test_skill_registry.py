"""Discovery across sources (later overrides earlier, broken skills listed) and
selection of a task's skills within a budget."""

from __future__ import annotations

from pathlib import Path

from daemon.skills import Registry, Source, choose


def write(
    root: Path,
    name: str,
    domains: tuple[str, ...] = (),
    languages: tuple[str, ...] = (),
    tokens: int = 100,
    description: str = "Helps.",
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    meta = f"metadata:\n  domains: [{', '.join(domains)}]\n  languages: [{', '.join(languages)}]\n"
    meta += f"  tokens: {tokens}\n"
    text = f"---\nname: {name}\ndescription: {description}\n{meta}---\n\nBody of {name}.\n"
    (folder / "SKILL.md").write_text(text)
    return folder


def test_later_source_overrides_and_records_it(tmp_path: Path) -> None:
    shipped, user, workspace = tmp_path / "shipped", tmp_path / "user", tmp_path / "ws"
    write(shipped, "git-workflow", description="Shipped.")
    write(shipped, "debugging")
    write(user, "git-workflow", description="User's.")
    write(workspace, "git-workflow", description="Workspace's.")
    (shipped / "README.md").write_text("not a skill")
    (shipped / "__pycache__").mkdir()  # the shipped skills/ folder is a Python package
    (shipped / ".git").mkdir()
    registry = Registry.scan(
        [
            Source("shipped", shipped),
            Source("user", user),
            Source("workspace", workspace),
            Source("missing", tmp_path / "nope"),
        ]
    )
    assert [e.name for e in registry.entries()] == ["debugging", "git-workflow"]
    entry = registry.get("git-workflow")
    assert entry is not None
    assert entry.source == "workspace"
    assert entry.overrides == ("shipped", "user")
    assert entry.doc is not None and entry.doc.description == "Workspace's."
    debugging = registry.get("debugging")
    assert debugging is not None and debugging.overrides == ()
    assert [d.name for d in registry.valid()] == ["debugging", "git-workflow"]
    assert registry.get("nosuch") is None


def test_invalid_skill_is_listed_and_a_broken_override_still_wins(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    write(shipped, "python-style")
    broken = user / "python-style"
    broken.mkdir(parents=True)
    (broken / "SKILL.md").write_text("---\nname: Python-Style\n---\n")
    (user / "no-file").mkdir()
    registry = Registry.scan([Source("shipped", shipped), Source("user", user)])
    entry = registry.get("python-style")
    assert entry is not None
    assert (entry.source, entry.doc, entry.overrides) == ("user", None, ("shipped",))
    assert len(entry.problems) == 4  # bad name, differs from folder, no description, no body
    assert all(p.startswith(str(broken / "SKILL.md")) for p in entry.problems)
    missing = registry.get("no-file")
    assert missing is not None and missing.doc is None
    assert missing.problems[0] == (
        f"{user / 'no-file' / 'SKILL.md'}: missing SKILL.md: "
        "create it, e.g. with `stigmer skills new NAME`"
    )
    assert registry.valid() == []


def catalogue(tmp_path: Path) -> Registry:
    root = tmp_path / "skills"
    write(root, "pytest-tdd", domains=("testing",), languages=("python",), tokens=300)
    write(root, "tdd", domains=("testing",), tokens=200)
    write(root, "python-style", languages=("python",), tokens=100)
    write(root, "git-workflow", domains=("git",), tokens=50)
    write(root, "big-testing", domains=("testing",), tokens=5000)
    broken = root / "broken"
    broken.mkdir()
    (broken / "SKILL.md").write_text("---\nname: broken\n---\n")
    return Registry.scan([Source("shipped", root)])


def test_most_specific_first_then_smaller_then_name(tmp_path: Path) -> None:
    choice = choose(catalogue(tmp_path), [], ["testing"], ["Python"], budget=10_000)
    assert [s.name for s in choice.skills] == ["pytest-tdd", "python-style", "tdd", "big-testing"]
    assert choice.tokens == 5600
    assert choice.left_out == ()
    assert choice.reason == (
        "4 of 4 skills matching domains testing and languages python fit within 10000 tokens: "
        "pytest-tdd, python-style, tdd, big-testing"
    )


def test_tight_budget_is_never_exceeded(tmp_path: Path) -> None:
    choice = choose(catalogue(tmp_path), [], ["testing"], ["python"], budget=350)
    # pytest-tdd (300) fits; python-style (100) and tdd (200) would go over; nothing
    # after them is small enough either.
    assert [s.name for s in choice.skills] == ["pytest-tdd"]
    assert choice.tokens == 300 <= choice.budget
    assert choice.left_out == (
        "python-style: over budget (100 tokens)",
        "tdd: over budget (200 tokens)",
        "big-testing: over budget (5000 tokens)",
    )
    # A smaller skill further down still fits after a bigger one did not.
    choice = choose(catalogue(tmp_path / "b"), [], ["testing"], ["python"], budget=250)
    assert [s.name for s in choice.skills] == ["python-style"]
    assert choose(catalogue(tmp_path / "c"), [], ["testing"], [], budget=0).skills == ()


def test_nothing_requested_or_matching(tmp_path: Path) -> None:
    registry = catalogue(tmp_path)
    choice = choose(registry, [], [], [], budget=1000)
    assert choice.skills == () and choice.tokens == 0
    assert choice.reason == "no skills named and no domains or languages given"
    choice = choose(registry, [], ["cooking"], [], budget=1000)
    assert choice.skills == () and choice.reason == "no skill matches domains cooking"


def test_named_skills_in_order_with_unknown_and_invalid(tmp_path: Path) -> None:
    registry = catalogue(tmp_path)
    named = ["big-testing", "nosuch", "git-workflow", "broken", "big-testing"]
    # Domains are ignored when skills are named.
    choice = choose(registry, named, ["testing"], [], 100)
    assert [s.name for s in choice.skills] == ["big-testing", "git-workflow"]
    assert choice.left_out == ("nosuch: no such skill", "broken: invalid (2 problems)")
    assert choice.tokens == 5050 and choice.budget == 100
    assert choice.reason == (
        "named by the task: big-testing, git-workflow "
        "(5050 tokens, over the budget of 100; named skills are kept)"
    )
