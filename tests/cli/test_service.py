"""`stigmer local install-service`: what the unit file and program section say."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from cli import service
from cli.errors import CliError, UsageError
from shared.paths import resolve
from tests.support import STIGMER, env_for

SPACED = Path("/opt/my tools/50% off/bin/stigmer")
LOG = Path("/home/a user/state/logs/daemon.log")


def spec(environment: dict[str, str] | None = None, user: str = "") -> service.ServiceSpec:
    return service.ServiceSpec(SPACED, LOG, environment or {}, user)


def unit_values(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def program(text: str) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return dict(parser["program:stigmer"])


def supervisord_expand(value: str) -> str:
    """What supervisord does to a value: `%(name)s` expansion, `%%` → `%`."""
    return value % {}


def test_systemd_unit_runs_the_daemon_with_the_required_settings() -> None:
    text = service.render_systemd(spec({"STIGMER_HOME": "/srv/stig mer"}))
    values = unit_values(text)
    assert "[Service]" in text and "[Install]" in text
    assert values["Restart"] == ["on-failure"]
    assert values["RestartSec"] == ["1"]
    assert values["KillMode"] == ["mixed"]
    assert values["TimeoutStopSec"] == ["30"]
    assert values["WantedBy"] == ["default.target"]
    assert values["Environment"] == ['"STIGMER_HOME=/srv/stig mer"']


def test_systemd_quotes_paths_with_spaces_and_escapes_specifiers() -> None:
    text = service.render_systemd(spec())
    (exec_start,) = unit_values(text)["ExecStart"]
    assert exec_start == '"/opt/my tools/50%% off/bin/stigmer" daemon run'
    # systemd's quoting is the shell's for double quotes; %% is a literal %.
    assert shlex.split(exec_start.replace("%%", "%")) == [str(SPACED), "daemon", "run"]
    assert "Environment" not in unit_values(text)
    assert unit_values(text)["StandardOutput"] == [f"append:{LOG}"]


def test_systemd_escapes_quotes_dollars_and_backslashes() -> None:
    odd = service.ServiceSpec(Path('/x/"q"/$HOME/b\\s/stigmer'), LOG, {"STIGMER_HOME": 'a"b'})
    values = unit_values(service.render_systemd(odd))
    assert values["ExecStart"] == ['"/x/\\"q\\"/$$HOME/b\\\\s/stigmer" daemon run']
    assert values["Environment"] == ['"STIGMER_HOME=a\\"b"']


def test_supervisord_program_section() -> None:
    text = service.render_supervisord(
        spec({"HOME": "/home/a user", "STIGMER_HOME": "/srv/50% home"}, user="alice")
    )
    section = program(text)
    assert section["autostart"] == "true"
    assert section["autorestart"] == "true"
    assert section["startsecs"] == "1"
    assert section["stopsignal"] == "TERM"
    assert section["stopwaitsecs"] == "30"
    assert section["stopasgroup"] == "false"
    assert section["killasgroup"] == "false"
    assert section["redirect_stderr"] == "true"
    assert section["user"] == "alice"
    assert supervisord_expand(section["stdout_logfile"]) == str(LOG)
    # supervisord splits the command as a POSIX shell would, after expansion.
    assert shlex.split(supervisord_expand(section["command"])) == [str(SPACED), "daemon", "run"]
    assert supervisord_expand(section["environment"]) == (
        'HOME="/home/a user",STIGMER_HOME="/srv/50% home"'
    )
    # Why the group is not signalled is said in the file.
    assert "process group" in text


def test_supervisord_value_with_double_quotes_uses_single_ones() -> None:
    section = program(service.render_supervisord(spec({"STIGMER_HOME": '/a"b'})))
    assert section["environment"] == "STIGMER_HOME='/a\"b'"


@pytest.mark.parametrize("render", [service.render_systemd, service.render_supervisord])
def test_line_breaks_are_refused(render: object) -> None:
    assert callable(render)
    with pytest.raises(UsageError):
        render(spec({"STIGMER_HOME": "/a\nb"}))


def test_environment_passes_on_where_files_live() -> None:
    assert service.service_environment({"STIGMER_HOME": "rel", "XDG_STATE_HOME": "/s"}) == {
        "STIGMER_HOME": str(Path("rel").absolute())
    }
    assert service.service_environment(
        {"XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "relative", "XDG_RUNTIME_DIR": "/run/user/1"}
    ) == {"XDG_CONFIG_HOME": "/c", "XDG_RUNTIME_DIR": "/run/user/1"}
    assert service.service_environment({"HOME": "/h"}) == {}


def test_supervisord_spec_sets_user_and_home(tmp_path: Path) -> None:
    paths = resolve({"STIGMER_HOME": str(tmp_path)})
    got = service.spec_for(service.Manager.SUPERVISORD, paths, {"STIGMER_HOME": str(tmp_path)})
    assert got.user
    assert got.environment["HOME"] == str(Path.home())
    assert got.environment["STIGMER_HOME"] == str(tmp_path)
    assert got.log_file == tmp_path / "state" / "logs" / "daemon.log"
    assert got.stigmer == STIGMER
    systemd = service.spec_for(service.Manager.SYSTEMD, paths, {})
    assert systemd.user == "" and systemd.environment == {}


def test_default_paths(tmp_path: Path) -> None:
    paths = resolve({"STIGMER_HOME": str(tmp_path)})
    assert service.default_path(service.Manager.SUPERVISORD, paths, {}) == (
        tmp_path / "config" / "supervisord-stigmer.conf"
    )
    assert service.default_path(service.Manager.SYSTEMD, paths, {"XDG_CONFIG_HOME": "/x"}) == (
        Path("/x/systemd/user/stigmer.service")
    )
    assert service.default_path(service.Manager.SYSTEMD, paths, {"XDG_CONFIG_HOME": "rel"}) == (
        Path.home() / ".config" / "systemd" / "user" / "stigmer.service"
    )


def test_write_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "unit"
    service.write(path, "one\n", force=False)
    with pytest.raises(CliError) as caught:
        service.write(path, "two\n", force=False)
    assert caught.value.exit_code == 2 and "--force" in caught.value.message
    service.write(path, "two\n", force=True)
    assert path.read_text() == "two\n"
    assert service.remove(path) and not service.remove(path)


# --- the commands -------------------------------------------------------------------


def stigmer(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STIGMER, *args],
        env={**env_for(home), **env},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_install_and_uninstall_supervisord(tmp_path: Path) -> None:
    home = tmp_path / "my home"
    result = stigmer(home, "local", "install-service", "--supervisord")
    assert result.returncode == 0, result.stderr
    path = home / "config" / "supervisord-stigmer.conf"
    assert result.stdout == f"{path}\n"
    assert f"files = {path}" in result.stderr
    assert "[include]" in result.stderr
    section = program(path.read_text())
    assert shlex.split(supervisord_expand(section["command"])) == [str(STIGMER), "daemon", "run"]
    assert f'STIGMER_HOME="{home}"' in section["environment"]
    # supervisord refuses a log file in a folder that does not exist.
    assert (home / "state" / "logs").is_dir()

    again = stigmer(home, "local", "install-service", "--supervisord")
    assert again.returncode == 2 and "--force" in again.stderr and again.stdout == ""
    forced = stigmer(home, "local", "install-service", "--supervisord", "--force")
    assert forced.returncode == 0, forced.stderr

    removed = stigmer(home, "local", "uninstall-service", "--supervisord")
    assert removed.returncode == 0 and not path.exists()
    nothing = stigmer(home, "local", "uninstall-service", "--supervisord")
    assert nothing.returncode == 0 and "nothing to remove" in nothing.stderr


def test_install_systemd_in_xdg_config_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config_home = tmp_path / "xdg"
    result = stigmer(
        home, "local", "install-service", "--systemd", XDG_CONFIG_HOME=str(config_home)
    )
    assert result.returncode == 0, result.stderr
    unit = config_home / "systemd" / "user" / "stigmer.service"
    assert result.stdout == f"{unit}\n"
    assert "systemctl --user daemon-reload && systemctl --user enable --now stigmer" in (
        result.stderr
    )
    values = unit_values(unit.read_text())
    assert values["ExecStart"] == [f'"{STIGMER}" daemon run']
    assert values["Environment"] == [f'"STIGMER_HOME={home}"']
    removed = stigmer(
        home, "local", "uninstall-service", "--systemd", XDG_CONFIG_HOME=str(config_home)
    )
    assert removed.returncode == 0 and not unit.exists()


def test_install_with_output(tmp_path: Path) -> None:
    target = tmp_path / "out" / "stigmer.conf"
    result = stigmer(
        tmp_path / "home", "local", "install-service", "--supervisord", "--output", str(target)
    )
    assert result.returncode == 0, result.stderr
    assert target.is_file() and os.stat(target).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("flags", [(), ("--systemd", "--supervisord")])
@pytest.mark.parametrize("command", ["install-service", "uninstall-service"])
def test_exactly_one_manager(tmp_path: Path, command: str, flags: tuple[str, ...]) -> None:
    result = stigmer(tmp_path, "local", command, *flags)
    assert result.returncode == 2
    assert "--supervisord or --systemd" in result.stderr
    assert result.stdout == ""
