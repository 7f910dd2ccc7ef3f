"""One reading of every configuration source (``emulator.config.document``) and one TLS context
(``emulator.tls.configured_context``), shared by ``emulator.load_config``/``start``, the fixtures and
the CLI."""

from __future__ import annotations

import socket
import ssl
import typing as t
from pathlib import Path

import pytest

import emulator
from emulator import config as configuration
from emulator.tls import TLSConfigError
from emulator.tls import configured_context
from emulator.tls import server_context
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.config import FIXTURE_DEFAULTS
from pax_registry_fixtures.config import build_document
from pax_registry_fixtures.tls import TLSFiles

YAML = "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  headers:\n    X-Flag: [yes]\n"
PARSED = {"version": 0.1, "storage": {"inmemory": {}}, "http": {"headers": {"X-Flag": ["yes"]}}}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(YAML, encoding="utf-8")
    return path


def test_text_a_path_string_and_a_path_read_alike(config_file: Path) -> None:
    # Header values stay text however the document arrives (distribution sends them as written).
    assert configuration.document(YAML) == PARSED
    assert configuration.document(str(config_file)) == PARSED
    assert configuration.document(config_file) == PARSED


def test_none_is_empty_and_a_mapping_is_copied() -> None:
    source: dict[str, t.Any] = {"storage": {"inmemory": {}}}
    read = configuration.document(source)
    read["storage"]["inmemory"]["x"] = 1
    assert configuration.document(None) == {}
    assert source == {"storage": {"inmemory": {}}}


def test_a_base_is_layered_under_the_source_and_its_driver_replaced() -> None:
    base = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/r"}, "delete": {"enabled": True}}}
    assert configuration.document("storage: inmemory\n", base=base) == {
        "version": 0.1,
        "storage": {"delete": {"enabled": True}, "inmemory": {}},
    }


def config_error(read: t.Callable[[], object]) -> str:
    with pytest.raises(configuration.ConfigError) as caught:
        read()
    return str(caught.value)


def test_errors_name_the_file_or_the_given_name(tmp_path: Path) -> None:
    listed = tmp_path / "list.yml"
    listed.write_text("- storage\n", encoding="utf-8")
    not_mapping = "<document>: the top level must be a mapping"
    assert config_error(lambda: configuration.document(listed, name="<mine>")).startswith(
        f"{listed}: {not_mapping}"
    )
    assert config_error(lambda: configuration.document("[1]", name="<mine>")).startswith(
        f"<mine>: {not_mapping}"
    )
    unreadable = f"{tmp_path}: <document>: cannot read the file"
    assert config_error(lambda: configuration.document(str(tmp_path))).startswith(unreadable)
    assert "cannot read the file" in config_error(lambda: configuration.document(tmp_path / "missing.yml"))


def test_a_line_naming_no_file_is_yaml_text(tmp_path: Path) -> None:
    assert configuration.source_name(str(tmp_path / "missing.yml")) == configuration.IN_PROCESS_SOURCE
    assert configuration.source_name(tmp_path / "missing.yml") == str(tmp_path / "missing.yml")
    with pytest.raises(configuration.ConfigError, match="top level must be a mapping"):
        configuration.document(str(tmp_path / "missing.yml"))


def test_load_config_layers_only_a_mapping_over_the_default(config_file: Path) -> None:
    default = emulator.load_config(None)
    assert emulator.load_config({"http": {"secret": "s"}}).storage == default.storage
    assert emulator.load_config(config_file).storage.driver == "inmemory"
    assert emulator.load_config(config_file).source == str(config_file)
    no_storage = config_error(lambda: emulator.load_config("version: 0.1\n"))
    assert no_storage.startswith("<in-process>: storage: no storage driver")


def test_the_fixtures_read_sources_as_load_config_does(config_file: Path) -> None:
    expected = configuration.layered(
        configuration.merged(configuration.development_default(), FIXTURE_DEFAULTS), PARSED
    )
    assert build_document(config_file) == build_document(YAML) == expected
    not_mapping = config_error(lambda: build_document("[1]"))
    assert not_mapping.startswith("<pax_registry>: <document>: the top level must be a mapping")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return TLSFiles(tmp_path_factory.mktemp("tls"))


def tls_of(section: t.Mapping[str, t.Any]) -> configuration.TLSConfig | None:
    return emulator.load_config({"http": {"tls": dict(section)}}).http.tls


def test_configured_context_is_none_without_certificate_files() -> None:
    assert configured_context(None) is None
    assert configured_context(tls_of({"letsencrypt": {"cachefile": "/le", "hosts": ["a.example"]}})) is None


def test_configured_context_serves_the_configured_certificate(tls_files: TLSFiles) -> None:
    tls = tls_of(tls_files.server_config(client_auth=True))
    context = configured_context(tls)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


def test_configured_context_fails_as_server_context_does(tls_files: TLSFiles) -> None:
    tls = tls_of({"certificate": str(tls_files.key_path), "key": str(tls_files.key_path)})
    assert tls is not None
    with pytest.raises(TLSConfigError) as configured:
        configured_context(tls)
    with pytest.raises(TLSConfigError) as direct:
        server_context(tls)
    assert (configured.value.key, configured.value.problem) == (direct.value.key, direct.value.problem)
    assert "holds no PEM certificate" in configured.value.problem


@pytest.mark.parametrize("serve", ["start", "fixture"])
def test_start_and_the_fixtures_serve_https_from_http_tls(serve: str, tls_files: TLSFiles) -> None:
    config = {"storage": {"inmemory": {}}, "http": {"tls": tls_files.server_config()}}
    server = emulator.start(config) if serve == "start" else RegistryServer(config)
    try:
        assert server.url.startswith("https://")
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        with tls_files.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as wrapped:
            wrapped.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
            assert wrapped.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
