"""Every user mistake, through the real command line: one line on stderr, nothing else, and the exit status.

Each case runs ``python -m emulator`` in a subprocess, as a user would. Start-up mistakes that the
configuration names (a key, a file, a directory) say ``configuration error: <config>: <key>: ...``; a
port another process holds says ``cannot listen on ...``, since the file is not at fault.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from pax_registry_fixtures.process import clean_environ
from pax_registry_fixtures.process import end_process

#: Nothing in these tests may bind the development configuration's 127.0.0.1:5000.
FREE_PORT = {"addr": "127.0.0.1:0", "secret": "a fixed secret, so that no warning is logged"}


def run_cli(
    *args: str, env: t.Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        capture_output=True,
        text=True,
        env=clean_environ(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def write_config(tmp_path: Path, **sections: t.Any) -> Path:
    document: dict[str, t.Any] = {"version": "0.1", "storage": "inmemory", "http": FREE_PORT}
    document.update(sections)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def fails_with(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert (result.returncode, result.stderr.splitlines()) == (1, [line]), result.stderr
    assert result.stdout == ""


def htpasswd_at(path: Path) -> dict[str, t.Any]:
    return {"htpasswd": {"realm": "r", "path": str(path)}}


# -- the htpasswd file ---------------------------------------------------------------------------------


def test_htpasswd_file_that_is_a_directory_stops_the_start(tmp_path: Path) -> None:
    directory = tmp_path / "htpasswd"
    directory.mkdir()
    config = write_config(tmp_path, auth=htpasswd_at(directory))
    for command in ("serve", "check-config"):
        fails_with(
            run_cli(command, str(config)),
            f"configuration error: {config}: auth.htpasswd.path: {directory}: cannot read it: Is a directory",
        )


def test_htpasswd_file_of_garbage_stops_the_start(tmp_path: Path) -> None:
    garbage = tmp_path / "htpasswd"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    config = write_config(tmp_path, auth=htpasswd_at(garbage))
    for command in ("serve", "check-config"):
        fails_with(
            run_cli(command, str(config)),
            f"configuration error: {config}: auth.htpasswd.path: {garbage}: "
            "not an htpasswd file: line 1 is not user:hash",
        )


def test_htpasswd_file_that_cannot_be_created_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    path = tmp_path / "plain-file" / "htpasswd"
    config = write_config(tmp_path, auth=htpasswd_at(path))
    fails_with(
        run_cli("serve", str(config)),
        f"configuration error: {config}: auth.htpasswd.path: {path}: cannot create it: Not a directory",
    )


def test_missing_htpasswd_file_is_provisioned_and_its_password_logged_once_at_warn(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "dir" / "htpasswd"
    config = write_config(tmp_path, auth=htpasswd_at(path))
    # Port in use after provisioning: the process stops by itself, with everything it logged.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(config), env={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"})
    assert result.returncode == 1, result.stderr
    mentions = [line for line in result.stderr.splitlines() if "password=" in line]
    assert len(mentions) == 1, result.stderr
    assert "level=warning" in mentions[0]
    assert "user=docker" in mentions[0]
    assert path.read_text().startswith("docker:$2a$")


# -- the storage root ----------------------------------------------------------------------------------


def test_storage_root_that_cannot_be_created_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    root = tmp_path / "plain-file" / "data"
    config = write_config(tmp_path, storage={"filesystem": {"rootdirectory": str(root)}})
    fails_with(
        run_cli("serve", str(config)),
        f"configuration error: {config}: storage.filesystem.rootdirectory: "
        f"cannot create {root}: Not a directory",
    )


def test_storage_root_that_is_a_file_stops_the_start(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.write_text("")
    config = write_config(tmp_path, storage={"filesystem": {"rootdirectory": str(root)}})
    fails_with(
        run_cli("serve", str(config)),
        f"configuration error: {config}: storage.filesystem.rootdirectory: cannot create {root}: File exists",
    )


# -- the address ---------------------------------------------------------------------------------------


def test_address_in_use_is_a_run_time_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli("serve", str(config), env={"REGISTRY_HTTP_ADDR": addr})
    fails_with(result, f"cannot listen on {addr}: Address already in use")


# -- the configuration ---------------------------------------------------------------------------------


def test_missing_version(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("storage: inmemory\n")
    for command in ("serve", "check-config"):
        fails_with(
            run_cli(command, str(config)),
            f"configuration error: {config}: version: missing (add version: 0.1)",
        )


def test_misspelt_storage_variable_names_the_unknown_key(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli("serve", str(config), env={"REGISTRY_STORAGE_DELTE_ENABLED": "true"})
    fails_with(
        result,
        f"configuration error: {config}: storage: unknown key storage.delte "
        "(did you mean storage.delete?) (from REGISTRY_STORAGE_DELTE_ENABLED)",
    )


def test_misspelt_storage_key_in_the_file_names_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, storage={"inmemory": {}, "delte": {"enabled": True}})
    fails_with(
        run_cli("check-config", str(config)),
        f"configuration error: {config}: storage: unknown key storage.delte (did you mean storage.delete?)",
    )


# -- --version and check-config ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["serve", "--version"], ["check-config", "--version"]])
def test_version_is_the_package_version(args: list[str]) -> None:
    result = run_cli(*args)
    version = importlib.metadata.version("pax-registry-harness")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["registry", *args[:-1], version]


def test_start_up_line_shows_the_package_version(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", str(config)],
        env=clean_environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        end_process(process, timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    assert "listening on 127.0.0.1:" in line, line
    assert line.rstrip().endswith(f"version={importlib.metadata.version('pax-registry-harness')}"), line


def test_check_config_reads_the_configuration_path_variable_and_shows_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: inmemory\nhttp:\n  secret: hush\n")
    result = run_cli("check-config", env={"REGISTRY_CONFIGURATION_PATH": str(config)})
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["http"]["addr"] == ":5000"
    assert effective["http"]["maxconnections"] == 1000
    assert effective["http"]["secret"] == "<redacted>"
    assert effective["auth"] == {}
    assert effective["storage"]["maintenance"]["uploadpurging"]["age"] == "168h"
    assert result.stderr.splitlines() == [
        f"ok: {config}: serve listens on :5000 (http, no auth, inmemory storage)"
    ]


def test_check_config_output_is_a_configuration_serve_reads_the_same(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    config = write_config(
        tmp_path,
        storage={"filesystem": {"rootdirectory": str(tmp_path / "data")}, "delete": {"enabled": True}},
        auth=htpasswd_at(htpasswd),
        http={"addr": "127.0.0.1:0", "headers": {"X-Custom": ["yes"]}},
    )
    first = run_cli("check-config", str(config), env={"REGISTRY_LOG_LEVEL": "debug"})
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[-1] == (
        f"ok: {config}: serve listens on 127.0.0.1:0 (http, htpasswd auth, filesystem storage)"
    )
    shown = tmp_path / "shown.yml"
    shown.write_text(first.stdout)
    second = run_cli("check-config", str(shown))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    effective = yaml.safe_load(first.stdout)
    assert effective["log"]["level"] == "debug"
    assert effective["http"]["headers"] == {"X-Custom": ["yes"]}


def test_check_config_without_a_file_shows_the_development_default() -> None:
    result = run_cli("check-config")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["http"]["addr"] == "127.0.0.1:5000"
    assert result.stderr.splitlines() == [
        "ok: <built-in default>: serve listens on 127.0.0.1:5000 (http, no auth, inmemory storage)"
    ]


def test_unreadable_configuration_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    fails_with(
        run_cli("check-config", str(missing)),
        f"configuration error: {missing}: <document>: cannot read the file: No such file or directory",
    )
    assert not os.path.exists(missing)


# -- what the emulator does not implement ------------------------------------------------------------------

REFUSED: dict[str, dict[str, t.Any]] = {
    "middleware": {"middleware": {"registry": [{"name": "cloudfront"}]}},
    "reporting": {"reporting": {"bugsnag": {"apikey": "k"}}},
    "policy": {"policy": {"repository": {"classes": ["image"]}}},
    "log.hooks": {"log": {"hooks": [{"type": "mail", "levels": ["panic"]}]}},
    "auth.token": {"auth": {"token": {"realm": "https://auth", "service": "s", "issuer": "i"}}},
    "auth.silly": {"auth": {"silly": {"realm": "r", "service": "s"}}},
    "storage.gcs": {"storage": {"gcs": {"bucket": "b"}}},
    "proxy.exec": {"proxy": {"remoteurl": "http://127.0.0.1:9", "exec": {"command": "helper"}}},
    "redis.tls": {"redis": {"addr": "127.0.0.1:6379", "tls": {"enabled": True}}},
    "http.h2c": {"http": {**FREE_PORT, "h2c": {"enabled": True}}},
    "compatibility.schema1.enabled": {"compatibility": {"schema1": {"enabled": True}}},
}


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_an_unimplemented_section_stops_serve_and_check_config_in_one_line(tmp_path: Path, key: str) -> None:
    config = write_config(tmp_path, **REFUSED[key])
    for command in ("serve", "check-config"):
        result = run_cli(command, str(config))
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(f"configuration error: {config}: {key}: is set but this emulator "), line
