"""`stigmer skills ...`: list, show, validate and create Agent Skills.

`list` and `show` ask the daemon (SkillService) when it runs, else look at the same
two folders it does: the shipped `skills/` and the user's `<config>/skills`, a user
skill overriding the shipped one of the same name. `validate` and `new` work on
files only and never need a daemon.

`validate` prints its report on stdout (it is the command's output, for grep and
editors): one `file:line: message: fix` line per problem, then a count line. Exit
code 0 when every skill is valid, 1 when there is a problem, 2 when a PATH does not
exist (nothing is checked then).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import runtime

if TYPE_CHECKING:
    from protos.skill_service_pb2 import Skill
    from shared.skillformat import Problem

# Command bodies import what they need (PyYAML, the skill format, protobuf): the
# rest of the CLI must not pay for them.

app = typer.Typer(
    help="List, show, validate and create skills (Agent Skills: a folder with a SKILL.md).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="The skill's name.", show_default=False)
]

_DESCRIPTION_EXCERPT = 60


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List the skills: where each comes from, its size, its domains; invalid ones too."""
    runtime.run(_list(json))


@app.command()
def show(name: NameArgument, json: JsonOption = False) -> None:
    """Show one skill: its frontmatter facts and its body (or its problems)."""
    runtime.run(_show(name, json))


@app.command()
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="A skill folder, a SKILL.md, or a folder of skill folders.",
            show_default=False,
        ),
    ],
    json: JsonOption = False,
) -> None:
    """Check skills; print every problem as file:line: message: fix (exit 1 if any)."""
    code = _validate(paths, json)
    if code:
        raise typer.Exit(code)


@app.command()
def new(
    name: NameArgument,
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to create NAME/SKILL.md (default: your skills folder).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing SKILL.md.")] = False,
) -> None:
    """Create NAME/SKILL.md from a valid template and print its path."""
    _new(name, dir, force)


# -- where skills are (without a daemon) ---------------------------------------------


def shipped_folder() -> Path:
    import skills as shipped

    return Path(shipped.__file__).resolve().parent


def user_folder() -> Path:
    from shared.paths import resolve

    return resolve().config_dir / "skills"


def local_skills() -> list[Skill]:
    """The skills as the daemon's ListSkills would answer: shipped, then the user's,
    a later source overriding an earlier one; invalid ones listed with their problems."""
    found: dict[str, Skill] = {}
    for label, root in (("shipped", shipped_folder()), ("user", user_folder())):
        for folder in _skill_folders(root):
            hidden = found.get(folder.name)
            overrides = [] if hidden is None else [*hidden.overrides, hidden.source]
            found[folder.name] = _skill(folder, label, overrides)
    return [found[name] for name in sorted(found)]


def _skill_folders(root: Path) -> list[Path]:
    # As the daemon: every subfolder is meant as a skill, but hidden ones and Python's.
    if not root.is_dir():
        return []
    return sorted(
        child
        for child in root.iterdir()
        if child.is_dir() and not child.name.startswith((".", "_"))
    )


def _skill(folder: Path, source: str, overrides: list[str], with_body: bool = False) -> Skill:
    from protos.skill_service_pb2 import Skill
    from shared.skillformat import load_body, parse_skill

    doc, problems = parse_skill(folder)
    skill = Skill(
        name=folder.name,
        source=source,
        path=str(folder),
        problems=[str(p) for p in problems],
        overrides=overrides,
    )
    if doc is not None:
        skill.description = doc.description
        skill.tokens = doc.tokens
        skill.domains.extend(doc.domains)
        skill.languages.extend(doc.languages)
        skill.secrets.extend(doc.secrets)
        skill.allowed_tools.extend(doc.allowed_tools)
        if with_body:
            skill.body = load_body(folder)
    return skill


async def _skills() -> list[Skill]:
    from cli.client import DaemonClient
    from cli.errors import DaemonNotRunning
    from protos.skill_service_pb2 import ListSkillsRequest

    try:
        async with DaemonClient() as client:
            response = await client.unary(client.skills.ListSkills, ListSkillsRequest())
            return list(response.skills)
    except DaemonNotRunning:
        return local_skills()


async def _one(name: str) -> Skill:
    from cli.client import DaemonClient
    from cli.errors import CliError, DaemonNotRunning
    from protos.skill_service_pb2 import GetSkillRequest

    try:
        async with DaemonClient() as client:
            return await client.unary(client.skills.GetSkill, GetSkillRequest(name=name))
    except DaemonNotRunning:
        pass
    listed = {skill.name: skill for skill in local_skills()}
    found = listed.get(name)
    if found is None:
        known = ", ".join(listed) or "none"
        raise CliError(f"error: no skill {name!r}; skills: {known}")
    return _skill(Path(found.path), found.source, list(found.overrides), with_body=True)


# -- list and show -------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def source_label(skill: Skill) -> str:
    if not skill.overrides:
        return skill.source
    return f"{skill.source} (overrides {', '.join(skill.overrides)})"


def _excerpt(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= _DESCRIPTION_EXCERPT:
        return line
    return line[: _DESCRIPTION_EXCERPT - 1].rstrip() + "…"


def list_row(skill: Skill) -> list[str]:
    if skill.problems:
        return [
            skill.name,
            source_label(skill),
            "-",
            "-",
            f"invalid: {_plural(len(skill.problems), 'problem')} "
            f"(stigmer skills show {skill.name})",
        ]
    return [
        skill.name,
        source_label(skill),
        str(skill.tokens),
        ", ".join(skill.domains) or "-",
        _excerpt(skill.description),
    ]


async def _list(as_json: bool) -> int:
    from cli.output import print_json, print_table, say, to_dict

    skills = await _skills()
    if as_json:
        print_json([to_dict(skill) for skill in skills])
        return 0
    if not skills:
        say(f"no skills: create one with `stigmer skills new NAME` (in {user_folder()})")
        return 0
    print_table(
        ["NAME", "SOURCE", "TOKENS", "DOMAINS", "DESCRIPTION"],
        [list_row(skill) for skill in skills],
        ["red" if skill.problems else None for skill in skills],
    )
    invalid = [skill.name for skill in skills if skill.problems]
    if invalid:
        say(
            f"{_plural(len(invalid), 'skill')} not loaded (invalid): {', '.join(invalid)}; "
            "see `stigmer skills show NAME`",
            style="yellow",
        )
    return 0


async def _show(name: str, as_json: bool) -> int:
    from cli.output import print_fields, print_json, to_dict

    skill = await _one(name)
    if as_json:
        print_json(to_dict(skill))
        return 0
    rows = [
        ("name", skill.name),
        ("source", source_label(skill)),
        ("path", skill.path),
    ]
    if skill.problems:
        rows.append(("status", f"invalid: {_plural(len(skill.problems), 'problem')}"))
        rows.extend(("problem", problem) for problem in skill.problems)
        print_fields(rows)
        return 0
    rows.extend(
        [
            ("description", skill.description),
            ("tokens", str(skill.tokens)),
            ("domains", ", ".join(skill.domains) or "-"),
            ("languages", ", ".join(skill.languages) or "-"),
            ("secrets", ", ".join(skill.secrets) or "-"),
            ("allowed tools", ", ".join(skill.allowed_tools) or "-"),
        ]
    )
    print_fields(rows)
    import sys

    # The body as written, after a blank line: Markdown, not markup for rich.
    sys.stdout.write("\n" + skill.body.rstrip("\n") + "\n")
    sys.stdout.flush()
    return 0


# -- validate --------------------------------------------------------------------------


def skill_folders_in(path: Path) -> list[Path]:
    """The skill folders a PATH means: the folder of a SKILL.md, a folder holding a
    SKILL.md, or each subfolder of a folder of skills (one without SKILL.md is
    reported as such). A folder with neither is checked as a skill (and is missing
    its SKILL.md)."""
    from shared.skillformat import SKILL_FILE

    if path.is_file():
        return [path.parent]
    if (path / SKILL_FILE).exists():
        return [path]
    return _skill_folders(path) or [path]


def _validate(paths: list[Path], as_json: bool) -> int:
    from cli.errors import UsageError
    from shared.skillformat import SKILL_FILE, parse_skill

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    other = [str(p) for p in paths if p.is_file() and p.name != SKILL_FILE]
    if other:
        raise UsageError(
            f"not a {SKILL_FILE}: {', '.join(other)} (give a skill's folder, its "
            f"{SKILL_FILE}, or a folder of skill folders)"
        )
    folders: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        for folder in skill_folders_in(path):
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                folders.append(folder)
    results = [(folder, parse_skill(folder)[1]) for folder in folders]
    total = sum(len(problems) for _, problems in results)
    if as_json:
        from cli.output import print_json

        print_json(
            {
                "skills": [
                    {
                        "path": str(folder),
                        "name": folder.name or folder.resolve().name,
                        "valid": not problems,
                        "problems": [_problem_dict(p) for p in problems],
                    }
                    for folder, problems in results
                ],
                "checked": len(results),
                "problems": total,
            }
        )
    else:
        import sys

        lines = [str(p) for _, problems in results for p in problems]
        lines.append(f"{_plural(len(results), 'skill')} checked, {_plural(total, 'problem')}")
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    return 1 if total else 0


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "message": problem.message,
        "fix": problem.fix,
    }


# -- new ----------------------------------------------------------------------------------


def _new(name: str, folder: Path | None, force: bool) -> None:
    from cli.errors import CliError, UsageError
    from cli.output import say
    from shared.skillformat import SKILL_FILE, name_problem, parse_skill, template

    problem = name_problem(name)
    if problem is not None:
        raise UsageError(f"{name!r} cannot be a skill's name: {problem}")
    root = folder if folder is not None else user_folder()
    path = root / name / SKILL_FILE
    if path.exists() and not force:
        raise UsageError(f"{path} already exists: edit it, or pass --force to start over")
    if root.exists() and not root.is_dir():
        raise UsageError(f"--dir {root} is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template(name), encoding="utf-8")
    except OSError as e:
        raise CliError(f"error: cannot write {path}: {e.strerror or e}") from None
    _, problems = parse_skill(path.parent)
    if problems:  # the template is valid by construction; say so loudly if not
        raise CliError(f"error: the template for {name!r} does not validate: {problems[0]}")
    import sys

    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()
    say(f"edit it, then check it with `stigmer skills validate {path.parent}`")
