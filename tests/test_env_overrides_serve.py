"""``REGISTRY_*`` environment overrides, proven by starting ``python -m emulator serve`` and using it.

Every example from the Spectro Cloud docs and tutorial and from the distribution notes is served for real;
bad configurations must fail through the real command line with one line on stderr and exit status 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import typing as t
from pathlib import Path

import pytest
import requests
import yaml

from emulator import config as configuration
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.distribution import write_htpasswd
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.seeding import image_manifest
from tests.test_cli_errors import run_cli

TIMEOUT = 30
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PACK_REGISTRY_HTPASSWD = Path("/auth/htpasswd-basic")

#: The tutorial's config (spectrocloud/tutorials:static/defaults/registry-config.yml).
TUTORIAL_CONFIG = "version: 0.1\nlog:\n  level: debug\nstorage: inmemory\nhttp:\n  addr: :5000\n"


# -- helpers -----------------------------------------------------------------------------------------------


def filesystem_config(root: Path, **sections: t.Any) -> dict[str, t.Any]:
    """Filesystem storage under ``root``, deletes disabled (distribution's default), info logs."""
    config: dict[str, t.Any] = {
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(root)}},
    }
    config.update(sections)
    return config


def serve(tmp_path: Path, env: t.Mapping[str, str] | None = None, **sections: t.Any) -> RegistryProcess:
    """A registry (not started yet) on :func:`filesystem_config` under ``tmp_path/data``."""
    return RegistryProcess(filesystem_config(tmp_path / "data", **sections), env=env)


def write_config(path: Path, config: t.Mapping[str, t.Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def start_upload(session: requests.Session, base: str, repository: str) -> requests.Response:
    return session.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=TIMEOUT)


def push_image(client: Client, repository: str, tag: str) -> str:
    """Push a one-layer OCI image and return the manifest's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer = os.urandom(512)
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    return client.push_manifest(repository, tag, image_manifest(config, [layer]))


def blob_path(root: Path, digest: str) -> Path:
    encoded = digest.partition(":")[2]
    return root / "docker" / "registry" / "v2" / "blobs" / "sha256" / encoded[:2] / encoded / "data"


def log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- storage -----------------------------------------------------------------------------------------------


def test_delete_is_refused_without_the_override(tmp_path: Path) -> None:
    with serve(tmp_path) as registry, Client(registry.url) as client, requests.Session() as session:
        digest = client.push_blob("env/delete", b"keep me")
        response = session.delete(f"{registry.url}/v2/env/delete/blobs/{digest}", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_storage_delete_enabled(tmp_path: Path) -> None:
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}
    with serve(tmp_path, env) as registry, Client(registry.url) as client, requests.Session() as session:
        manifest = push_image(client, "env/delete", "1")
        blob = client.push_blob("env/delete", b"delete me")
        deleted_blob = session.delete(f"{registry.url}/v2/env/delete/blobs/{blob}", timeout=TIMEOUT)
        deleted_manifest = session.delete(
            f"{registry.url}/v2/env/delete/manifests/{manifest}", timeout=TIMEOUT
        )
        gone = session.get(f"{registry.url}/v2/env/delete/manifests/{manifest}", timeout=TIMEOUT)
    assert deleted_blob.status_code == 202
    assert deleted_manifest.status_code == 202
    assert gone.status_code == 404


def test_storage_inmemory_replaces_the_filesystem_driver(tmp_path: Path) -> None:
    root = tmp_path / "data"
    env = {"REGISTRY_STORAGE": "inmemory"}
    with RegistryProcess(filesystem_config(root), env=env) as registry, Client(registry.url) as client:
        digest = client.push_blob("env/inmemory", b"in memory only")
        assert client.blob("env/inmemory", digest) == b"in memory only"
    assert not (root / "docker").exists()


@pytest.mark.parametrize(
    "env",
    [
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}"},
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"},
        {"REGISTRY_STORAGE_MAINTENANCE": "{readonly: {enabled: true}}"},
    ],
    ids=["readonly-map", "readonly-enabled", "maintenance-map"],
)
def test_read_only_mode_refuses_writes(env: dict[str, str], tmp_path: Path) -> None:
    with serve(tmp_path, env) as registry, requests.Session() as session:
        upload = start_upload(session, registry.url, "env/readonly")
        manifest = session.put(
            f"{registry.url}/v2/env/readonly/manifests/1",
            data=b"{}",
            headers={"Content-Type": OCI_MANIFEST},
            timeout=TIMEOUT,
        )
        base = session.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        missing = session.get(f"{registry.url}/v2/env/readonly/blobs/{digest_of(b'x')}", timeout=TIMEOUT)
    assert upload.status_code == 405
    assert manifest.status_code == 405
    assert base.status_code == 200
    assert missing.status_code == 404


# -- http --------------------------------------------------------------------------------------------------


def test_http_headers_from_env(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_HEADERS_X-Custom": "[v]"}
    with serve(tmp_path, env) as registry:
        base = requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        missing = requests.get(f"{registry.url}/v2/env/headers/tags/list", timeout=TIMEOUT)
    assert base.headers["X-Custom"] == "v"
    assert missing.status_code == 404
    assert missing.headers["X-Custom"] == "v"


def test_absolute_location_by_default(tmp_path: Path) -> None:
    with serve(tmp_path) as registry, requests.Session() as session:
        location = start_upload(session, registry.url, "env/urls").headers["Location"]
    assert location.startswith(f"{registry.url}/v2/env/urls/blobs/uploads/")


def test_http_relativeurls(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_RELATIVEURLS": "true"}
    with serve(tmp_path, env) as registry, requests.Session() as session, Client(registry.url) as client:
        location = start_upload(session, registry.url, "env/urls").headers["Location"]
        digest = client.push_blob("env/urls", b"relative")
    assert location.startswith("/v2/env/urls/blobs/uploads/")
    assert digest == digest_of(b"relative")


def test_http_prefix(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_PREFIX": "/reg/"}
    with serve(tmp_path, env) as registry:
        prefixed = requests.get(f"{registry.url}/reg/v2/", timeout=TIMEOUT)
        unprefixed = requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        with requests.Session() as session:
            location = start_upload(session, f"{registry.url}/reg", "env/prefix").headers["Location"]
    assert prefixed.status_code == 200
    assert prefixed.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert unprefixed.status_code == 404
    assert location.startswith(f"{registry.url}/reg/v2/env/prefix/blobs/uploads/")


# -- log ---------------------------------------------------------------------------------------------------


def test_log_level_from_env_lowers_the_threshold(tmp_path: Path) -> None:
    config = filesystem_config(tmp_path / "data", log={"level": "error"})
    with RegistryProcess(config) as quiet:
        requests.get(f"{quiet.url}/v2/", timeout=TIMEOUT)
    with RegistryProcess(config, env={"REGISTRY_LOG_LEVEL": "debug"}) as verbose:
        requests.get(f"{verbose.url}/v2/", timeout=TIMEOUT)
    assert "level=info" not in quiet.stderr_text()
    assert "level=info" in verbose.stderr_text()


def test_log_level_debug_logs_requests(tmp_path: Path) -> None:
    """distribution logs each request's handling at debug level; a debug registry must say something."""
    with serve(tmp_path, {"REGISTRY_LOG_LEVEL": "debug"}) as registry, Client(registry.url) as client:
        client.push_blob("env/debug", b"debug")
    assert "level=debug" in registry.stderr_text()


@pytest.mark.parametrize("driver", ["inmemory", "filesystem"])
def test_startup_logs_no_errors(driver: str, tmp_path: Path) -> None:
    env = {"REGISTRY_STORAGE": "inmemory"} if driver == "inmemory" else {}
    with serve(tmp_path, env) as registry:
        requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
    assert "level=error" not in registry.stderr_text()


def test_log_formatter_json(tmp_path: Path) -> None:
    with serve(tmp_path, {"REGISTRY_LOG_FORMATTER": "json"}) as registry:
        requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
    lines = log_lines(registry.stderr_text())
    assert lines, "the registry logged nothing"
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "msg"} <= set(entry), line


def test_access_log_on_stdout_by_default(tmp_path: Path) -> None:
    with serve(tmp_path) as registry:
        requests.get(f"{registry.url}/v2/", headers={"User-Agent": "access-probe"}, timeout=TIMEOUT)
    assert re.search(r'"GET /v2/ HTTP/1\.1" 200 .*"access-probe"', registry.stdout_text())


def test_log_accesslog_disabled(tmp_path: Path) -> None:
    env = {"REGISTRY_LOG_ACCESSLOG_DISABLED": "true"}
    with serve(tmp_path, env) as registry:
        for _ in range(3):
            requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
    assert log_lines(registry.stdout_text()) == []


# -- Spectro pack registry and tutorial examples ---------------------------------------------------------


@pytest.fixture
def pack_registry_htpasswd() -> t.Iterator[bool]:
    """Leaves the pack registry's own htpasswd path as found; yields whether the file was missing."""
    directory = PACK_REGISTRY_HTPASSWD.parent
    directory_missing = not directory.exists()
    file_missing = not PACK_REGISTRY_HTPASSWD.exists()
    writable = os.access(directory if not directory_missing else directory.parent, os.W_OK)
    if file_missing and not writable:
        pytest.skip(f"{directory} is not writable, so the registry cannot provision its htpasswd file")
    yield file_missing
    if file_missing:
        PACK_REGISTRY_HTPASSWD.unlink(missing_ok=True)
    if directory_missing and directory.exists() and not any(directory.iterdir()):
        directory.rmdir()


def test_spectro_docs_docker_run_example(pack_registry_htpasswd: bool, tmp_path: Path) -> None:
    """`docker run -e REGISTRY_LOG_LEVEL=debug -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=…`
    over the image's default config: the htpasswd path from the file survives ``REGISTRY_AUTH=htpasswd``."""
    env = {
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "My Enterprise Realm",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "data"),
    }
    with RegistryProcess(configuration.pack_registry_default_path(), env=env) as registry:
        challenge = requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        provisioned = re.search(r"password=(\S+)", registry.stderr_text())
        if pack_registry_htpasswd:
            assert provisioned, registry.stderr_text()
            credentials = ("docker", provisioned.group(1).strip('"'))
            authorized = requests.get(f"{registry.url}/v2/", auth=credentials, timeout=TIMEOUT)
            assert authorized.status_code == 200
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="My Enterprise Realm"'
    assert PACK_REGISTRY_HTPASSWD.exists()


def test_pack_registry_default_config_with_paths_from_env(tmp_path: Path) -> None:
    """The shipped pack registry default config, served with its storage and htpasswd paths moved by env."""
    root = tmp_path / "data"
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"admin": "secret"})
    env = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root),
        "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd),
    }
    system_file_existed = PACK_REGISTRY_HTPASSWD.exists()
    with RegistryProcess(configuration.pack_registry_default_path(), env=env) as registry:
        challenge = requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        with Client(registry.url, auth=("admin", "secret")) as client:
            digest = client.push_blob("spectro-packs/archive/demo", b"pack bytes")
            pack_api = client.request("GET", f"/v1/spectro-packs/archive/demo/blobs/{digest}")
        health = requests.get(f"{registry.url}/health", timeout=TIMEOUT)

    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="basic-realm"'
    assert challenge.headers["X-Frame-Options"] == "DENY"
    assert challenge.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        challenge.headers["Content-Security-Policy"] == "img-src 'self'; script-src 'self';  style-src 'self"
    )
    assert blob_path(root, digest).read_bytes() == b"pack bytes"
    assert pack_api.body == b"pack bytes"
    assert health.status_code == 200
    assert health.json() == {"status": "UP"}
    assert PACK_REGISTRY_HTPASSWD.exists() == system_file_existed


def test_check_config_shows_pack_registry_paths_from_env(tmp_path: Path) -> None:
    env = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "data"),
        "REGISTRY_AUTH_HTPASSWD_PATH": str(tmp_path / "htpasswd"),
    }
    result = run_cli("check-config", configuration.pack_registry_default_path(), env=env)
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert effective["auth"]["htpasswd"] == {"realm": "basic-realm", "path": str(tmp_path / "htpasswd")}


def test_check_config_shows_the_connection_cap_in_effect(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  inmemory: {}\n")
    assert yaml.safe_load(run_cli("check-config", str(config)).stdout)["http"]["maxconnections"] == 1000
    env = {"REGISTRY_HTTP_MAXCONNECTIONS": "25"}
    result = run_cli("check-config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["http"]["maxconnections"] == 25


def test_tutorial_dockerfile_env_over_tutorial_config(tmp_path: Path) -> None:
    """The tutorial Dockerfile's four variables; only the htpasswd file's location differs."""
    config = tmp_path / "registry-config.yml"
    config.write_text(TUTORIAL_CONFIG)
    htpasswd = write_htpasswd(tmp_path / "htpasswd-basic", {"admin": "admin"})
    env = {
        "REGISTRY_LOG_LEVEL": "info",
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd),
    }
    with RegistryProcess(config, env=env) as registry:
        challenge = requests.get(f"{registry.url}/v2/", timeout=TIMEOUT)
        wrong = requests.get(f"{registry.url}/v2/", auth=("admin", "nope"), timeout=TIMEOUT)
        with Client(registry.url, auth=("admin", "admin")) as client:
            base = client.request("GET", "/v2/")
            push_image(client, "tutorial/app", "1.0.0")
            tags = client.request("GET", "/v2/tutorial/app/tags/list")
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="Registry Realm"'
    assert wrong.status_code == 401
    assert base.status == 200
    assert tags.json() == {"name": "tutorial/app", "tags": ["1.0.0"]}
    assert "level=debug" not in registry.stderr_text()


# -- bad configurations through the real command line ----------------------------------------------------


CONFIG = "{config}"  # stands for the configuration file's path in the expected words
MINIMAL = "version: 0.1\nstorage: inmemory\n"

BAD_CONFIGS = [
    pytest.param("version: 0.1\nstorage: [inmemory\n", {}, (CONFIG, "line 3"), id="yaml-syntax"),
    pytest.param(
        "version: 0.1\nstorage:\n  inmemory: {}\n  filesystem: {rootdirectory: /tmp/x}\n",
        {},
        (CONFIG, "storage"),
        id="two-drivers",
    ),
    pytest.param(
        "version: 0.1\nlog: {level: loud}\nstorage: inmemory\n", {}, (CONFIG, "log.level"), id="log-level"
    ),
    pytest.param(
        "version: 0.1\nstorage: inmemory\nhttp: {addr: 'localhost:http-ish'}\n",
        {},
        (CONFIG, "http.addr"),
        id="bad-addr",
    ),
    pytest.param(
        "version: 0.1\nstorage: {inmemory: {}, delete: {enabled: [1]}}\n",
        {},
        (CONFIG, "storage.delete.enabled"),
        id="wrong-type",
    ),
    pytest.param(
        MINIMAL,
        {"REGISTRY_LOG_LEVEL": "loud"},
        (CONFIG, "log.level", "REGISTRY_LOG_LEVEL"),
        id="env-log-level",
    ),
    pytest.param(
        MINIMAL,
        {"REGISTRY_STORAGE_S3_BUCKET": "packs"},
        (CONFIG, "storage", "REGISTRY_STORAGE_S3_BUCKET"),
        id="env-second-driver",
    ),
    pytest.param(
        MINIMAL,
        {"REGISTRY_HTTP_HEADERS": "{a: [b"},
        ("REGISTRY_HTTP_HEADERS", "http.headers"),
        id="env-not-yaml",
    ),
]


@pytest.mark.parametrize(("text", "env", "words"), BAD_CONFIGS)
def test_bad_config_fails_with_one_line(
    text: str, env: dict[str, str], words: tuple[str, ...], tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(text)
    result = run_cli("serve", str(config), env=env)
    assert result.returncode == 1
    lines = log_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word.replace(CONFIG, str(config)) in lines[0]


def test_address_in_use_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "config.yml", {"version": "0.1", "storage": "inmemory"})
        result = run_cli("serve", str(config), env={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"})
    assert result.returncode == 1
    # A run-time error, not a configuration error: the address comes from the variable, as in effect.
    lines = [line for line in log_lines(result.stderr) if "cannot listen on" in line]
    assert lines == [f"cannot listen on 127.0.0.1:{port}: Address already in use"], result.stderr


def test_missing_config_file_fails_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    result = run_cli("serve", str(missing))
    assert result.returncode == 1
    lines = log_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0]
