from __future__ import annotations

import grpc
import pytest

from cli.client import exit_code_for
from cli.errors import CliError, ExitCode
from cli.run import build_spec
from cli.run_args import parse_env
from cli.views import duration, parse_state
from protos import task_pb2


def test_parse_env() -> None:
    assert parse_env([]) == {}
    assert parse_env(["A=1", "B=x=y", "C=", "A=2"]) == {"A": "2", "B": "x=y", "C": ""}


@pytest.mark.parametrize("pair", ["NOVALUE", "=x", "1A=x", "A-B=x", "A B=x"])
def test_parse_env_rejects(pair: str) -> None:
    with pytest.raises(CliError) as err:
        parse_env([pair])
    assert err.value.exit_code == ExitCode.USAGE
    assert "--env" in err.value.message


def test_parse_state() -> None:
    assert parse_state("running") == task_pb2.TASK_STATE_RUNNING
    assert parse_state("TIMED-OUT") == task_pb2.TASK_STATE_TIMED_OUT
    assert parse_state("TASK_STATE_FAILED") == task_pb2.TASK_STATE_FAILED
    for bad in ("unspecified", "nope", ""):
        with pytest.raises(CliError):
            parse_state(bad)


def test_status_code_table() -> None:
    assert exit_code_for(grpc.StatusCode.UNAVAILABLE) == 3
    assert exit_code_for(grpc.StatusCode.INVALID_ARGUMENT) == 2
    assert exit_code_for(grpc.StatusCode.OUT_OF_RANGE) == 2
    for code in (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        assert exit_code_for(code) == 1


def test_build_spec_defaults_to_here(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(str(tmp_path))
    spec = build_spec(["make", "test"], True, None, "sub", ["A=1"], 5.0, 2)
    assert list(spec.command.argv) == ["make", "test"]
    assert spec.workspace.path == str(tmp_path)
    assert spec.command.cwd == "sub"
    assert dict(spec.command.env) == {"A": "1"}
    assert spec.command.timeout_seconds == 5.0
    assert spec.retry.max_attempts == 3


def test_build_spec_checks() -> None:
    with pytest.raises(CliError, match="--cmd"):
        build_spec(["x"], False, None, None, [], None, 0)
    with pytest.raises(CliError, match="no program"):
        build_spec([], True, None, None, [], None, 0)
    with pytest.raises(CliError, match="--retries"):
        build_spec(["x"], True, None, None, [], None, 10)


def test_duration() -> None:
    assert [duration(s) for s in (0, 59, 61, 3661, 90000)] == [
        "0s",
        "59s",
        "1m01s",
        "1h01m",
        "1d01h",
    ]
