"""`stigmer secrets ...`, and the check `stigmer local start` makes before it starts
the daemon: every required key is present, or asked for once and stored.

Values are never printed, never taken as a flag or an argument, and never put
in the daemon's environment (cli/launcher.py hands them over on its stdin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli import runtime

if TYPE_CHECKING:
    from pathlib import Path

    from cli.client import DaemonClient
    from cli.secret_prompt import PromptIO
    from protos.secret_service_pb2 import SecretInfo, SecretSource
    from shared.paths import Paths
    from shared.secretstore import SecretStore, Source

T = TypeVar("T")

app = typer.Typer(
    help="Set, list and remove the API keys that tasks use (values are never shown).",
    no_args_is_help=True,
)

DEFAULT_REQUIRED = ("ANTHROPIC_API_KEY",)
PLAINTEXT_FILE_NAME = "secrets.toml"
NAME_RULE = "capital letters, digits and _, not starting with a digit, such as GITHUB_TOKEN"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
NameArgument = Annotated[
    str,
    typer.Argument(
        help="The variable name, such as ANTHROPIC_API_KEY.", metavar="NAME", show_default=False
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure-storage",
        help="Store it in a plaintext file (0600) instead of the OS keyring.",
    ),
]
VerifyOption = Annotated[
    bool,
    typer.Option("--verify", help="Check the key with one cheap call to the API first."),
]


# -- what is required, and where it is -----------------------------------------


def required_names(config_file: Path) -> list[str]:
    """`[secrets] required` from config.toml; the default when it is not there.

    A malformed file is the daemon's to report: here it means the default."""
    import tomllib

    from shared.secretstore import valid_name

    try:
        data = tomllib.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return list(DEFAULT_REQUIRED)
    section = data.get("secrets")
    if not isinstance(section, dict) or "required" not in section:
        return list(DEFAULT_REQUIRED)
    names = section["required"]
    if not isinstance(names, list) or not all(isinstance(n, str) and valid_name(n) for n in names):
        return list(DEFAULT_REQUIRED)
    return list(dict.fromkeys(names))


def plaintext_path(paths: Paths) -> Path:
    return paths.config_dir / PLAINTEXT_FILE_NAME


def open_store(paths: Paths, environ: Mapping[str, str], names: Iterable[str]) -> SecretStore:
    """The store as `stigmer local start` sees it: `names` and every stored name
    count as present when this environment sets them (to a non-empty value)."""
    from shared.secretstore import SecretStore

    path = plaintext_path(paths)
    wanted = {*names, *SecretStore(path).known_names()}
    return SecretStore(path, {n: environ[n] for n in wanted if environ.get(n)})


def source_text(source: Source) -> str:
    return "the keyring" if source.value == "keyring" else f"the {source.value}"


def warn_plaintext(name: str, path: Path) -> None:
    from cli.output import say

    say(
        f"warning: using {name} from the plaintext file {path} (--insecure-storage); "
        "prefer the keyring",
        style="yellow",
    )


def not_set_message(missing: list[str]) -> str:
    if len(missing) == 1:
        name = missing[0]
        return (
            f"error: {name} is not set: run `stigmer secrets set {name}` "
            f"(or export {name} before `stigmer local start`)"
        )
    names = ", ".join(missing[:-1]) + " and " + missing[-1]
    return (
        f"error: {names} are not set: run `stigmer secrets set NAME` for each "
        "(or export them before `stigmer local start`)"
    )


async def store_value(store: SecretStore, name: str, value: str, insecure: bool) -> Source:
    """Stores it and says where (never the value); no keyring: exit code 4."""
    from cli.errors import CliError, ExitCode
    from cli.output import say
    from shared.secretstore import KeyringUnavailable, Source, hint

    try:
        source = await store.put(name, value, insecure)
    except KeyringUnavailable as e:
        raise CliError(f"error: {e}", ExitCode.SECRET) from None
    where = "the keyring"
    if source is Source.PLAINTEXT:
        where = f"the plaintext file {store.plaintext_path}"
    say(f"stored {name} in {where} ({hint(value)})")
    if source is Source.PLAINTEXT:
        say(
            f"warning: {store.plaintext_path} holds {name} in plain text (0600); "
            "prefer the keyring",
            style="yellow",
        )
    return source


async def ensure_required(
    paths: Paths,
    environ: Mapping[str, str],
    *,
    insecure: bool = False,
    check: bool = False,
    io: PromptIO | None = None,
    interactive: bool | None = None,
) -> list[str]:
    """Makes sure every required key is present before the daemon starts.

    A missing key is asked for once on a terminal (masked) and stored; without
    a terminal it is exit code 4. Returns the names whose values the daemon may
    take from `environ` (to hand over on its stdin, never in its environment)."""
    from cli.errors import CliError, ExitCode
    from cli.output import say
    from shared.secretstore import KeyringUnavailable, Source

    names = required_names(paths.config_file)
    store = open_store(paths, environ, names)
    missing = []
    for name in names:
        found = await store.get(name)
        if found is None:
            missing.append(name)
        elif found.source is Source.PLAINTEXT:
            warn_plaintext(name, store.plaintext_path)
    if missing:
        from cli import secret_prompt

        if interactive is None:
            interactive = secret_prompt.is_terminal()
        if not interactive:
            raise CliError(not_set_message(missing), ExitCode.SECRET)
        if not insecure:
            status = await store.keyring_status()
            if not status.usable:
                raise CliError(
                    f"error: {KeyringUnavailable(status.problem, missing[0])}", ExitCode.SECRET
                )
        kept = "a plaintext file" if insecure else "the keyring"
        say(f"stigmer needs {', '.join(missing)}; it is kept in {kept} and never shown")
        for name in missing:
            try:
                value = await secret_prompt.ask(name, io=io, check=check)
            except CliError as e:
                raise CliError(f"{e.message}; the daemon was not started", e.exit_code) from None
            await store_value(store, name, value, insecure)
    return sorted({*names, *store.known_names()})


# -- the commands --------------------------------------------------------------


def _check_name(name: str) -> None:
    from cli.errors import UsageError
    from shared.secretstore import valid_name

    if not valid_name(name):
        raise UsageError(f"{name!r} is not a valid secret name ({NAME_RULE})")


@app.command("set", context_settings={"allow_extra_args": True})
def set_(
    ctx: typer.Context,
    name: NameArgument,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from stdin (one trailing newline cut).")
    ] = False,
    insecure_storage: InsecureOption = False,
    verify: VerifyOption = False,
) -> None:
    """Store a secret: asked for with masked input, or read from stdin with --stdin.

    Example: printf %s "$KEY" | stigmer secrets set ANTHROPIC_API_KEY --stdin
    """
    from cli.errors import UsageError

    if ctx.args:
        # Never echo it: it is most likely the value.
        raise UsageError(
            "secrets set takes no value on the command line (it would stay in your "
            "shell history and the process list); type it at the prompt, or pipe it "
            "in with --stdin"
        )
    _check_name(name)
    runtime.run(_set(name, stdin, insecure_storage, verify))


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List the secrets: name, where each comes from, a masked hint, who needs it."""
    runtime.run(_list(json))


@app.command("rm")
def rm(name: NameArgument) -> None:
    """Remove a secret from the keyring and the plaintext file."""
    _check_name(name)
    runtime.run(_rm(name))


@app.command("status")
def status(json: JsonOption = False) -> None:
    """Show the keyring, the plaintext file and the required keys (exit 1 if one is missing)."""
    runtime.run(_status(json))


# -- bodies ----------------------------------------------------------------------


def _read_stdin() -> str:
    import sys

    value = sys.stdin.read()
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


async def _value_for(name: str, from_stdin: bool, check: bool) -> str:
    from cli import secret_prompt
    from cli.errors import CliError, ExitCode, UsageError

    if from_stdin:
        value = _read_stdin()
        if not value:
            raise UsageError(f"no value on stdin for {name}; nothing stored")
        secret_prompt.warn_format(name, value)
        if check and not await secret_prompt.verify(name, value):
            raise CliError(f"error: {name} not stored: the API refused it", ExitCode.SECRET)
        return value
    if not secret_prompt.is_terminal():
        raise UsageError(
            f"no terminal to ask for {name}: pipe the value in with --stdin, for example "
            f'`printf %s "$VALUE" | stigmer secrets set {name} --stdin`'
        )
    return await secret_prompt.ask(name, check=check)


def _connect(paths: Paths) -> DaemonClient | None:
    """A connection to the daemon, or None when it is not running."""
    from cli.client import DaemonClient
    from cli.errors import DaemonNotRunning

    client = DaemonClient(paths)
    try:
        client.connect()
    except DaemonNotRunning:
        return None
    return client


async def _set(name: str, from_stdin: bool, insecure: bool, check: bool) -> int:
    import os

    from cli.output import say
    from shared.paths import resolve

    paths = resolve()
    value = await _value_for(name, from_stdin, check)
    client = _connect(paths)
    if client is not None:
        try:
            await _set_in_daemon(client, name, value, insecure)
        finally:
            await client.close()
        return 0
    store = open_store(paths, {}, [name])
    await store_value(store, name, value, insecure)
    if os.environ.get(name):
        say(
            f"note: {name} is also set in this shell's environment, which "
            "`stigmer local start` uses first",
            style="yellow",
        )
    return 0


async def _set_in_daemon(client: DaemonClient, name: str, value: str, insecure: bool) -> None:
    from cli.output import say
    from protos.secret_service_pb2 import (
        SECRET_SOURCE_ENVIRONMENT,
        SECRET_SOURCE_PLAINTEXT_FILE,
        SetSecretRequest,
    )

    info = await _secret_call(
        client.unary(
            client.secrets.SetSecret,
            SetSecretRequest(name=name, value=value, insecure_storage=insecure),
        )
    )
    if info.source == SECRET_SOURCE_PLAINTEXT_FILE:
        say(f"stored {name} in the plaintext file ({info.hint})")
        say("warning: a plaintext file holds it (0600); prefer the keyring", style="yellow")
    else:
        say(f"stored {name} in the keyring ({info.hint})")
    if info.source == SECRET_SOURCE_ENVIRONMENT:
        say(
            f"note: the daemon uses {name} from the environment it was started in first; "
            "restart it without that variable to use the stored one",
            style="yellow",
        )
    say("the daemon restarts its runners to use it (busy ones after their task)")


async def _secret_call(call: Awaitable[T]) -> T:
    """A SecretService call; FAILED_PRECONDITION (no usable keyring) is exit code 4."""
    from cli.errors import CliError, ExitCode

    try:
        return await call
    except CliError as e:
        if e.rpc_code == "FAILED_PRECONDITION":
            raise CliError(e.message, ExitCode.SECRET, rpc_code=e.rpc_code) from None
        raise


async def _infos(paths: Paths) -> tuple[list[SecretInfo], bool]:
    """The secrets as the daemon sees them when it runs (True), else as
    `stigmer local start` would find them (False)."""
    from cli.client import DaemonClient
    from cli.errors import DaemonNotRunning
    from protos.secret_service_pb2 import ListSecretsRequest

    try:
        async with DaemonClient(paths) as client:
            response = await client.unary(client.secrets.ListSecrets, ListSecretsRequest())
            return list(response.secrets), True
    except DaemonNotRunning:
        return await local_infos(paths), False


async def local_infos(paths: Paths, environ: Mapping[str, str] | None = None) -> list[SecretInfo]:
    import os

    from protos.secret_service_pb2 import SecretInfo
    from shared.secretstore import hint

    env = os.environ if environ is None else environ
    required = required_names(paths.config_file)
    store = open_store(paths, env, required)
    names = sorted({*required, *store.known_names()})
    found = await store.get_many(names)
    infos = []
    for name in names:
        info = SecretInfo(name=name, required_by=["provider"] if name in required else [])
        if name in found:
            info.source = _proto_source(found[name].source)
            info.hint = hint(found[name].value)
        infos.append(info)
    return infos


def _proto_source(source: Source) -> SecretSource.ValueType:
    from protos import secret_service_pb2 as pb
    from shared.secretstore import Source

    return {
        Source.ENVIRONMENT: pb.SECRET_SOURCE_ENVIRONMENT,
        Source.KEYRING: pb.SECRET_SOURCE_KEYRING,
        Source.PLAINTEXT: pb.SECRET_SOURCE_PLAINTEXT_FILE,
    }[source]


def _source_label(source: SecretSource.ValueType) -> str:
    from protos import secret_service_pb2 as pb

    labels: dict[SecretSource.ValueType, str] = {
        pb.SECRET_SOURCE_ENVIRONMENT: "environment",
        pb.SECRET_SOURCE_KEYRING: "keyring",
        pb.SECRET_SOURCE_PLAINTEXT_FILE: "plaintext file",
    }
    return labels.get(source, "missing")


async def _list(as_json: bool) -> int:
    from cli.output import print_json, print_table, say, to_dict
    from shared.paths import resolve

    infos, _ = await _infos(resolve())
    if as_json:
        print_json([to_dict(info) for info in infos])
        return 0
    if not infos:
        say("no secrets: none is required or stored")
        return 0
    print_table(
        ["NAME", "SOURCE", "HINT", "REQUIRED BY"],
        [
            [i.name, _source_label(i.source), i.hint or "-", ", ".join(i.required_by) or "-"]
            for i in infos
        ],
        [None if i.source else "red" for i in infos],
    )
    return 0


async def _rm(name: str) -> int:
    import os

    from cli.output import say
    from protos.secret_service_pb2 import DeleteSecretRequest
    from shared.paths import resolve

    paths = resolve()
    client = _connect(paths)
    if client is not None:
        try:
            await _secret_call(
                client.unary(client.secrets.DeleteSecret, DeleteSecretRequest(name=name))
            )
        finally:
            await client.close()
        say(f"removed {name}; the daemon restarts its runners without it")
    else:
        await _rm_local(paths, name)
    if os.environ.get(name):
        say(f"note: {name} is still set in this shell's environment", style="yellow")
    return 0


async def _rm_local(paths: Paths, name: str) -> None:
    from cli.errors import CliError, ExitCode
    from cli.output import say
    from shared.secretstore import KeyringUnavailable

    store = open_store(paths, {}, [name])
    try:
        removed = await store.delete(name)
    except KeyringUnavailable as e:
        raise CliError(f"error: {e}", ExitCode.SECRET) from None
    if not removed:
        where = "the keyring or the plaintext file"
        status = await store.keyring_status()
        if not status.usable:
            where = f"the plaintext file (and no keyring is usable: {status.problem})"
        raise CliError(f"error: {name} is not stored in {where}")
    say(f"removed {name} from {' and '.join(source_text(s) for s in removed)}")


async def _status(as_json: bool) -> int:
    from cli.output import print_fields, print_json
    from shared.paths import resolve

    paths = resolve()
    store = open_store(paths, {}, [])
    keyring = await store.keyring_status()
    infos, daemon_running = await _infos(paths)
    required = [i for i in infos if i.required_by]
    ok = all(i.source for i in required)
    if as_json:
        print_json(
            {
                "keyring": {
                    "usable": keyring.usable,
                    "backend": keyring.backend,
                    "problem": keyring.problem,
                },
                "plaintext_file": {
                    "path": str(store.plaintext_path),
                    "in_use": store.plaintext_in_use(),
                },
                "daemon_running": daemon_running,
                "required": [
                    {
                        "name": i.name,
                        "present": bool(i.source),
                        "source": _source_label(i.source),
                        "hint": i.hint,
                    }
                    for i in required
                ],
                "ok": ok,
            }
        )
        return 0 if ok else 1
    rows = [
        (
            "keyring",
            f"usable ({keyring.backend})"
            if keyring.usable
            else f"not usable: {keyring.problem} ({keyring.backend})",
        ),
        (
            "plaintext file",
            f"in use: {store.plaintext_path} (--insecure-storage)"
            if store.plaintext_in_use()
            else f"not used ({store.plaintext_path})",
        ),
        (
            "daemon",
            "running (keys as it sees them)"
            if daemon_running
            else "not running (keys as `stigmer local start` would find them)",
        ),
    ]
    for i in required:
        if i.source:
            rows.append((i.name, f"present ({_source_label(i.source)}, {i.hint})"))
        else:
            rows.append((i.name, f"missing: run `stigmer secrets set {i.name}`"))
    if not required:
        rows.append(("required", "none"))
    print_fields(rows)
    return 0 if ok else 1
