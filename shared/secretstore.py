"""Where secrets live: the environment stigmer was started in, the OS keyring
(service `stigmer`, user = variable name), then an opt-in plaintext file.

Values only ever pass through here on their way into a runner's environment or
into the keyring; nothing here logs or prints one. Keyring calls are blocking
D-Bus calls that can hang on a locked keyring, so each runs in a thread under a
short timeout; a backend that fails, or the null one, counts as no keyring."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "stigmer"
PROVIDER_KEY = "ANTHROPIC_API_KEY"
_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
KEYRING_TIMEOUT_SECONDS = 3.0


class Source(enum.Enum):
    ENVIRONMENT = "environment"
    KEYRING = "keyring"
    PLAINTEXT = "plaintext file"


@dataclass(frozen=True)
class Found:
    name: str
    value: str
    source: Source


@dataclass(frozen=True)
class KeyringStatus:
    usable: bool
    backend: str
    problem: str = ""


class KeyringUnavailable(Exception):
    """No usable keyring; the message names the cause and the three ways out."""

    def __init__(self, cause: str, name: str = "THE_KEY") -> None:
        super().__init__(
            f"no usable keyring: {cause}. Either unlock or install a Secret Service"
            " (gnome-keyring, KeePassXC), or export the variable before"
            f" `stigmer local start` (export {name}=...), or store it in a plaintext"
            " file with `--insecure-storage`"
        )
        self.cause = cause


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def hint(value: str) -> str:
    """A masked hint that tells two keys apart without revealing either."""
    return "…" + value[-4:] if len(value) >= 12 else "…"


def format_warning(name: str, value: str) -> str | None:
    """A warning for a value that does not look like a key of its kind (never a refusal)."""
    if name == PROVIDER_KEY and not value.startswith("sk-ant-"):
        return f"{name} does not start with sk-ant-, as Anthropic keys do"
    if value != value.strip():
        return f"{name} has leading or trailing spaces; stored as entered"
    return None


async def _in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(function, *args), KEYRING_TIMEOUT_SECONDS)


def _backend_problem() -> tuple[str, str]:
    """(backend name, problem or "") without touching any secret."""
    import keyring
    from keyring.backends import fail, null

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    chained = getattr(backend, "backends", None)
    if isinstance(backend, fail.Keyring | null.Keyring) or chained == []:
        return name, "no Secret Service is running (no D-Bus session or no keyring daemon)"
    return name, ""


class SecretStore:
    def __init__(self, plaintext_path: Path, environment: Mapping[str, str] | None = None) -> None:
        # Values taken from the environment stigmer was started in; kept in memory only.
        self._environment = dict(environment or {})
        self._plaintext = plaintext_path

    @property
    def plaintext_path(self) -> Path:
        return self._plaintext

    def plaintext_in_use(self) -> bool:
        return self._plaintext.exists()

    # -- reading -------------------------------------------------------------

    async def get(self, name: str) -> Found | None:
        if name in self._environment:
            return Found(name, self._environment[name], Source.ENVIRONMENT)
        value = await self._keyring_get(name)
        if value:
            return Found(name, value, Source.KEYRING)
        stored = self._read_plaintext().get(name)
        if stored:
            return Found(name, stored, Source.PLAINTEXT)
        return None

    async def get_many(self, names: Iterable[str]) -> dict[str, Found]:
        found = {}
        for name in dict.fromkeys(names):
            hit = await self.get(name)
            if hit is not None:
                found[name] = hit
        return found

    async def keyring_status(self) -> KeyringStatus:
        try:
            backend, problem = await _in_thread(_backend_problem)
        except TimeoutError:
            return KeyringStatus(False, "?", "the keyring did not answer (locked?)")
        except Exception as exc:  # a broken backend must read as "no keyring"
            return KeyringStatus(False, "?", f"the keyring failed: {type(exc).__name__}")
        return KeyringStatus(not problem, backend, problem)

    async def _keyring_get(self, name: str) -> str | None:
        import keyring

        status = await self.keyring_status()
        if not status.usable:
            return None
        try:
            value: str | None = await _in_thread(keyring.get_password, SERVICE, name)
        except Exception:  # locked, timed out or broken: no keyring for this lookup
            return None
        return value

    def _read_plaintext(self) -> dict[str, str]:
        try:
            data = tomllib.loads(self._plaintext.read_text())
        except (FileNotFoundError, tomllib.TOMLDecodeError, OSError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str) and valid_name(k)}

    def known_names(self) -> list[str]:
        """Names stored by stigmer (the keyring cannot list its entries, so the
        names, never the values, are kept next to the plaintext file)."""
        names = set(self._environment) | set(self._read_plaintext())
        with contextlib.suppress(OSError):
            names.update(n for n in self._index().read_text().split() if valid_name(n))
        return sorted(names)

    # -- writing -------------------------------------------------------------

    async def put(self, name: str, value: str, insecure: bool = False) -> Source:
        """Stores `value` in the keyring, or in the plaintext file when `insecure`.
        Raises KeyringUnavailable when there is no keyring to store it in."""
        if insecure:
            data = self._read_plaintext()
            data[name] = value
            self._write_plaintext(data)
            source = Source.PLAINTEXT
        else:
            import keyring

            status = await self.keyring_status()
            if not status.usable:
                raise KeyringUnavailable(status.problem, name)
            try:
                await _in_thread(keyring.set_password, SERVICE, name, value)
            except TimeoutError:
                raise KeyringUnavailable(
                    "the keyring did not answer (is it locked?)", name
                ) from None
            except Exception as exc:
                raise KeyringUnavailable(
                    f"the keyring refused: {type(exc).__name__}", name
                ) from None
            source = Source.KEYRING
        self._remember(name)
        return source

    async def delete(self, name: str) -> list[Source]:
        """Removes `name` from the keyring and the plaintext file; says where it was."""
        import keyring
        from keyring.errors import PasswordDeleteError

        removed = []
        if (await self.keyring_status()).usable:
            try:
                await _in_thread(keyring.delete_password, SERVICE, name)
                removed.append(Source.KEYRING)
            except PasswordDeleteError:
                pass
            except Exception as exc:
                raise KeyringUnavailable(
                    f"the keyring refused: {type(exc).__name__}", name
                ) from None
        data = self._read_plaintext()
        if data.pop(name, None) is not None:
            self._write_plaintext(data)
            removed.append(Source.PLAINTEXT)
        self._forget(name)
        return removed

    def _write_plaintext(self, data: Mapping[str, str]) -> None:
        self._plaintext.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k} = {_toml_string(v)}\n" for k, v in sorted(data.items()))
        tmp = self._plaintext.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# stigmer secrets in plain text (--insecure-storage). Prefer the keyring.\n")
            f.write(text)
        os.replace(tmp, self._plaintext)

    def _index(self) -> Path:
        return self._plaintext.with_name("secret-names")

    def _remember(self, name: str) -> None:
        names = set(self.known_names()) - set(self._environment)
        names.add(name)
        self._write_index(names)

    def _forget(self, name: str) -> None:
        names = set(self.known_names()) - set(self._environment) - {name}
        self._write_index(names)

    def _write_index(self, names: set[str]) -> None:
        path = self._index()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{n}\n" for n in sorted(names)))


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
