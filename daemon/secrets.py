"""The daemon's secrets: which it knows, where each comes from, what runners and
tasks get, and the redactor that keeps every value out of logs, events and errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from daemon.errors import FailedPrecondition, InvalidArgument, NotFound
from shared.redact import Redactor
from shared.secretstore import Found, KeyringUnavailable, SecretStore, Source, hint, valid_name

log = logging.getLogger(__name__)

# Told to the runner, so it keeps these out of its tasks' environments.
ENV_SECRET_NAMES = "STIGMER_SECRET_NAMES"
MAX_VALUE_BYTES = 16 * 1024


@dataclass(frozen=True)
class SecretInfo:
    name: str
    source: Source | None
    hint: str
    required_by: tuple[str, ...]


class Secrets:
    def __init__(
        self,
        store: SecretStore,
        redactor: Redactor,
        required: Sequence[str],
        on_change: Callable[[str], Awaitable[object]],
    ) -> None:
        self._store = store
        self._redactor = redactor
        self._required = tuple(required)
        self._on_change = on_change

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def _learn(self, found: Iterable[Found]) -> None:
        for item in found:
            self._redactor.add(item.value)
            if item.source is Source.PLAINTEXT:
                log.warning(
                    "using %s from the plaintext file %s (--insecure-storage); prefer the keyring",
                    item.name,
                    self._store.plaintext_path,
                )

    async def for_runner(self) -> dict[str, str]:
        """Read fresh at each runner spawn: the provider key and every known secret,
        plus the list of their names so the runner holds them back from tools."""
        names = [*self._required, *self._store.known_names()]
        found = await self._store.get_many(names)
        self._learn(found.values())
        env = {name: item.value for name, item in found.items()}
        env[ENV_SECRET_NAMES] = ",".join(sorted(found))
        return env

    async def resolve(self, names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """The values of `names` that are set, and the names that are not."""
        found = await self._store.get_many(names)
        self._learn(found.values())
        return {n: f.value for n, f in found.items()}, [n for n in names if n not in found]

    async def describe(self) -> list[SecretInfo]:
        names = sorted({*self._required, *self._store.known_names()})
        found = await self._store.get_many(names)
        return [
            SecretInfo(
                name,
                found[name].source if name in found else None,
                hint(found[name].value) if name in found else "",
                ("provider",) if name in self._required else (),
            )
            for name in names
        ]

    async def put(self, name: str, value: str, insecure: bool) -> SecretInfo:
        _check_name(name)
        if not value:
            raise InvalidArgument("value", "", "give the secret's value (it is never shown)")
        if len(value.encode()) > MAX_VALUE_BYTES or "\x00" in value:
            raise InvalidArgument(
                "value", "(hidden)", f"keep it under {MAX_VALUE_BYTES} bytes, no NUL"
            )
        try:
            source = await self._store.put(name, value, insecure)
        except KeyringUnavailable as exc:
            raise FailedPrecondition(str(exc)) from None
        self._redactor.add(value)
        log.info("secret %s stored in the %s", name, source.value)
        await self._on_change(name)
        return SecretInfo(
            name, source, hint(value), ("provider",) if name in self._required else ()
        )

    async def delete(self, name: str) -> None:
        _check_name(name)
        try:
            removed = await self._store.delete(name)
        except KeyringUnavailable as exc:
            raise FailedPrecondition(str(exc)) from None
        if not removed:
            raise NotFound(
                f"secret {name} is not stored (not in the keyring or the plaintext file)"
            )
        log.info("secret %s removed from the %s", name, ", ".join(s.value for s in removed))
        await self._on_change(name)


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise InvalidArgument(
            "name", name, "use an environment variable name: A-Z, 0-9 and _, such as GITHUB_TOKEN"
        )


def environment_secrets(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: environ[name] for name in names if environ.get(name)}
