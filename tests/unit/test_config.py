from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, load, parse


def test_defaults_when_no_file(tmp_path: Path) -> None:
    assert load(tmp_path / "missing.toml") == Config()


def test_values_are_read() -> None:
    config = parse('[daemon]\ntcp_address = ""\n[runners]\ncount = 4\n[tasks]\nmax_attempts = 3\n')
    assert config.tcp_address == ""
    assert config.runners == 4
    assert config.default_max_attempts == 3


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[runners]\ncount = -1\n", ["runners.count", "-1", "0 to 64"]),
        ("[runners]\ncount = 'two'\n", ["runners.count", "'two'"]),
        ("[runners]\ncounts = 2\n", ["unknown key runners.counts", "allowed: count"]),
        ("[nope]\n", ["unknown section [nope]", "[daemon]"]),
        ("[daemon]\ntcp_address = 'localhost'\n", ["daemon.tcp_address", "host:port"]),
        ("[tasks]\ndefault_timeout_seconds = true\n", ["tasks.default_timeout_seconds", "True"]),
        ("runners = [", ["not valid TOML"]),
        ("[runners]\nautorestart = 'sometimes'\n", ["runners.autorestart", '"always"']),
        ("[runners]\nautorestart = [1]\n", ["runners.autorestart"]),
        ("[runners]\nexitcodes = [0, 300]\n", ["runners.exitcodes", "0 to 255"]),
        ("[runners]\nexitcodes = []\n", ["runners.exitcodes", "non-empty"]),
        ("[runners]\nstop_grace_seconds = 0\n", ["runners.stop_grace_seconds", "more than 0"]),
        ("[secrets]\nrequired = ['lower']\n", ["secrets.required", "variable names"]),
        ("[secrets]\nrequired = 'X'\n", ["secrets.required"]),
    ],
)
def test_errors_name_key_value_and_fix(text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    for name in names:
        assert name in str(caught.value)


def test_runner_policy_keys() -> None:
    from daemon.config import AutoRestart

    config = parse("[runners]\nautorestart = 'always'\nexitcodes = [0, 2]\nmax_failures = 3\n")
    assert config.policy.autorestart is AutoRestart.ALWAYS
    assert config.policy.exitcodes == frozenset({0, 2})
    assert config.policy.max_failures == 3
    assert config.runners == Config().runners


def test_integer_accepted_where_seconds_expected() -> None:
    assert parse("[tasks]\ndefault_timeout_seconds = 60\n").default_timeout_seconds == 60.0


def test_secrets_keys() -> None:
    assert Config().required_secrets == ("ANTHROPIC_API_KEY",)
    config = parse("[secrets]\nrequired = []\nwait_seconds = 5\n")
    assert config.required_secrets == () and config.secret_wait_seconds == 5.0


def test_a_damaged_token_file_is_replaced(tmp_path: Path) -> None:
    from shared.auth import load_or_create_token, sendable

    token_file = tmp_path / "token"
    token_file.write_bytes(b"\xff\xfe not a token \x80")
    fresh = load_or_create_token(token_file)
    assert sendable(fresh) and len(fresh) > 20
    assert load_or_create_token(token_file) == fresh
    assert token_file.stat().st_mode & 0o777 == 0o600
