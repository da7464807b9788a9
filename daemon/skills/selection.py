"""Which skills a task gets: the ones it names, or the most specific matches for its
domains and languages that fit within a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.skills.registry import Registry
from shared.skillformat import SkillDoc


@dataclass(frozen=True)
class Choice:
    skills: tuple[SkillDoc, ...]
    reason: str  # one sentence, for the `skills_chosen` event
    tokens: int  # the chosen skills' bodies, summed
    budget: int
    left_out: tuple[str, ...]  # "name: why", e.g. "nosuch: no such skill"


def choose(
    registry: Registry,
    named: Sequence[str],
    domains: Sequence[str],
    languages: Sequence[str],
    budget: int,
) -> Choice:
    if named:
        return _named(registry, named, budget)
    return _matching(registry, domains, languages, budget)


def _named(registry: Registry, named: Sequence[str], budget: int) -> Choice:
    # The task asked for these by name: all of them, in its order, whatever the budget;
    # the total is still reported so an oversized choice is visible.
    skills: list[SkillDoc] = []
    left_out: list[str] = []
    for name in dict.fromkeys(named):  # a name given twice loads once
        entry = registry.get(name)
        if entry is None:
            left_out.append(f"{name}: no such skill")
        elif entry.doc is None:
            count = len(entry.problems)
            left_out.append(f"{name}: invalid ({count} problem{'s' if count != 1 else ''})")
        else:
            skills.append(entry.doc)
    tokens = sum(skill.tokens for skill in skills)
    reason = f"named by the task: {_names(skills)}"
    if tokens > budget:
        reason += f" ({tokens} tokens, over the budget of {budget}; named skills are kept)"
    return Choice(tuple(skills), reason, tokens, budget, tuple(left_out))


def _matching(
    registry: Registry, domains: Sequence[str], languages: Sequence[str], budget: int
) -> Choice:
    # Skills' tags are lowercase (the format requires it); a task file may say "Python".
    wanted_domains = {domain.lower() for domain in domains}
    wanted_languages = {language.lower() for language in languages}
    if not wanted_domains and not wanted_languages:
        return Choice((), "no skills named and no domains or languages given", 0, budget, ())

    def shared(skill: SkillDoc) -> int:
        return len(wanted_domains.intersection(skill.domains)) + len(
            wanted_languages.intersection(skill.languages)
        )

    matches = [skill for skill in registry.valid() if shared(skill) > 0]
    # Most specific first; among equals the smaller leaves more room, then by name so
    # the same request always gets the same skills.
    matches.sort(key=lambda skill: (-shared(skill), skill.tokens, skill.name))
    skills: list[SkillDoc] = []
    left_out: list[str] = []
    tokens = 0
    for skill in matches:
        # Keep going after a miss: a smaller, less specific skill may still fit.
        if tokens + skill.tokens <= budget:
            skills.append(skill)
            tokens += skill.tokens
        else:
            left_out.append(f"{skill.name}: over budget ({skill.tokens} tokens)")
    asked = _asked(sorted(wanted_domains), sorted(wanted_languages))
    if not matches:
        reason = f"no skill matches {asked}"
    else:
        reason = (
            f"{len(skills)} of {len(matches)} skills matching {asked} "
            f"fit within {budget} tokens: {_names(skills)}"
        )
    return Choice(tuple(skills), reason, tokens, budget, tuple(left_out))


def _asked(domains: list[str], languages: list[str]) -> str:
    parts = []
    if domains:
        parts.append(f"domains {', '.join(domains)}")
    if languages:
        parts.append(f"languages {', '.join(languages)}")
    return " and ".join(parts)


def _names(skills: Sequence[SkillDoc]) -> str:
    return ", ".join(skill.name for skill in skills) or "none"
