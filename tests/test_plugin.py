"""The pytest plugin (``fixtures/``): its fixtures, the request log, fault injection, live mode, and that an
installed package provides the fixtures with no conftest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import site
import socket
import ssl
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from pax_registry_fixtures import Htpasswd
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures import TLSFiles
from pax_registry_fixtures.config import build_document
from pax_registry_fixtures.seeding import OCI_MANIFEST

if t.TYPE_CHECKING:
    from pax_registry_fixtures.s3 import S3Bucket

pytest_plugins = ["pytester"]

PROJECT = Path(__file__).resolve().parents[1]


def http() -> requests.Session:
    """A session that ignores the machine's CA bundle and proxy variables, as a loopback test should."""
    session = requests.Session()
    session.trust_env = False
    return session


def refused(url: str) -> bool:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def plugin_args(config: pytest.Config) -> list[str]:
    """``-p`` options for plugins an in-process pytester run needs but will not load by entry point.

    When the project is installed, entry points load both plugins; naming them again would register them
    twice, which pytest refuses.
    """
    loaded = {getattr(plugin, "__name__", None) for plugin in config.pluginmanager.get_plugins()}
    # pytest-benchmark, where installed, warns in an in-process run inside an xdist worker.
    args = ["-p", "no:cacheprovider", "-p", "no:benchmark"]
    for module in ("pax_registry_fixtures.plugin", "conformance.plugin"):
        if module not in loaded:
            args += ["-p", module]
    return args


# -- pax_registry ------------------------------------------------------------------------------------------


def test_pax_registry_is_an_in_process_emulator_on_loopback(pax_registry: RegistryServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", pax_registry.url)
    assert pax_registry.host == pax_registry.url.removeprefix("http://")
    assert pax_registry.url_for("v2/") == f"{pax_registry.url}/v2/"
    assert pax_registry.config.storage.driver == "inmemory"
    assert pax_registry.config.storage.delete_enabled
    assert pax_registry.config.http.addr == "127.0.0.1:0"

    response = http().get(pax_registry.url_for("/v2/"), headers={"User-Agent": "probe/1"})

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    [entry] = pax_registry.requests
    assert (entry.method, entry.path, entry.status) == ("GET", "/v2/", 200)
    assert entry.headers["User-Agent"] == "probe/1"
    assert entry.response_headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert entry.fault is None


@pytest.mark.parametrize("run", [1, 2])
def test_every_test_gets_an_empty_registry(pax_registry: RegistryServer, run: int) -> None:
    assert http().get(pax_registry.url_for("/v2/_catalog")).json() == {"repositories": []}
    pax_registry.push_image("shared/name", "1")


def test_push_image_returns_the_digests_of_what_it_stored(pax_registry: RegistryServer) -> None:
    image = pax_registry.push_image("team/app", "1.0", layers=3, size=4096)
    # Seeding bypasses HTTP: the log only holds what clients did.
    assert pax_registry.requests == []
    session = http()

    response = session.get(
        pax_registry.url_for("/v2/team/app/manifests/1.0"), headers={"Accept": OCI_MANIFEST}
    )

    assert response.content == image.manifest
    assert response.headers["Docker-Content-Digest"] == image.digest == _sha256(image.manifest)
    assert image.reference == f"{pax_registry.host}/team/app:1.0"
    manifest = json.loads(image.manifest)
    assert manifest["config"]["digest"] == image.config
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.layers)
    assert len(set(image.layers)) == 3
    for digest in (image.config, *image.layers):
        blob = session.get(pax_registry.url_for(f"/v2/team/app/blobs/{digest}")).content
        assert _sha256(blob) == digest
    layer = session.get(pax_registry.url_for(f"/v2/team/app/blobs/{image.layers[0]}")).content
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        [member] = archive.getmembers()
        assert member.size == 4096
    assert image.size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def test_push_blob_and_manifest_for_an_artifact(pax_registry: RegistryServer) -> None:
    blob = pax_registry.push_blob("packs/nginx", b"pack content")
    config = pax_registry.push_blob("packs/nginx", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.pack",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": blob, "size": 12}],
    }

    digest = pax_registry.push_manifest("packs/nginx", "1.21.0", manifest)

    # Like distribution, the emulator serves an OCI manifest only to clients that name its type.
    response = http().get(
        pax_registry.url_for(f"/v2/packs/nginx/manifests/{digest}"), headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200
    assert _sha256(response.content) == digest
    assert json.loads(response.content)["artifactType"] == "application/vnd.example.pack"
    assert blob == _sha256(b"pack content")
    untagged = pax_registry.push_image("packs/nginx", None)
    assert untagged.reference == f"{pax_registry.host}/packs/nginx@{untagged.digest}"


def test_seeding_works_on_a_read_only_registry(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory({"storage": {"maintenance": {"readonly": {"enabled": True}}}})

    image = registry.push_image("frozen/app", "1")

    session = http()
    url = registry.url_for("/v2/frozen/app/manifests/1")
    assert session.get(url, headers={"Accept": OCI_MANIFEST}).status_code == 200
    assert session.put(url, data=image.manifest, headers={"Content-Type": OCI_MANIFEST}).status_code == 405


def test_clear_forgets_the_log_and_the_faults(pax_registry: RegistryServer) -> None:
    session = http()
    pax_registry.faults.fail("GET", "/v2/", times=None)
    assert session.get(pax_registry.url_for("/v2/")).status_code == 503

    pax_registry.clear()

    assert pax_registry.requests == []
    assert pax_registry.faults.rules == []
    assert session.get(pax_registry.url_for("/v2/")).status_code == 200


def test_assert_request_made_counts_by_method_and_path(pax_registry: RegistryServer) -> None:
    image = pax_registry.push_image("team/app", "1")
    session = http()
    session.get(pax_registry.url_for("/v2/team/app/manifests/1"), headers={"Accept": OCI_MANIFEST})
    session.head(pax_registry.url_for(f"/v2/team/app/blobs/{image.layers[0]}"))
    session.head(pax_registry.url_for(f"/v2/team/app/blobs/{image.config}"))
    session.get(pax_registry.url_for("/v2/team/app/tags/list?n=1"))

    pax_registry.assert_request_made("GET", "/v2/team/app/manifests/1")
    pax_registry.assert_request_made("HEAD", "/v2/team/app/blobs/*", count=2)
    pax_registry.assert_request_made("head", re.compile(r"/v2/team/app/blobs/sha256:[0-9a-f]{64}"), count=2)
    pax_registry.assert_request_made("*", "/v2/team/*", count=4)
    pax_registry.assert_request_made("GET", "/v2/team/app/tags/list?n=1")
    pax_registry.assert_request_made("GET", "/v2/team/app/tags/list")
    pax_registry.assert_request_made("GET", "/v2/*", count=None, status=200)
    pax_registry.assert_request_made("PUT", "/v2/*", count=0)
    assert [entry.method for entry in pax_registry.requests_matching(path="/v2/team/app/blobs/*")] == [
        "HEAD",
        "HEAD",
    ]


def test_assert_request_made_explains_a_mismatch(pax_registry: RegistryServer) -> None:
    http().get(
        pax_registry.url_for("/v2/team/app/manifests/1.0"), headers={"Authorization": "Basic c2VjcmV0"}
    )

    with pytest.raises(AssertionError) as failure:
        pax_registry.assert_request_made("GET", "/v2/team/app/manifests/2.0")

    message = str(failure.value)
    assert "expected 1 request(s) GET /v2/team/app/manifests/2.0, found 0" in message
    assert "most similar requests:\n  GET /v2/team/app/manifests/1.0 -> 404" in message
    assert "Authorization: <redacted>" in message
    assert "c2VjcmV0" not in message


def test_a_failing_assert_request_made_shows_the_test_line_then_the_message(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makepyfile(
        """
        def test_missing(pax_registry):
            pax_registry.session().get(pax_registry.url_for("/v2/"))
            pax_registry.assert_request_made("GET", "/v2/_catalog")
        """
    )

    result = pytester.runpytest_subprocess(*plugin_args(request.config))

    result.assert_outcomes(failed=1)
    lines = result.stdout.lines
    called = lines.index('>       pax_registry.assert_request_made("GET", "/v2/_catalog")')
    assert lines[called + 1] == "E       AssertionError: expected 1 request(s) GET /v2/_catalog, found 0"
    # None of the helper's own lines come before the message.
    assert "handle.py" not in result.stdout.str()


# -- reset, waiting for requests, strict mode ----------------------------------------------------------


@pytest.mark.parametrize("storage", ["inmemory", "filesystem", "s3"])
def test_reset_empties_the_storage_and_forgets_log_faults_and_expectations(
    pax_registry_factory: RegistryFactory, storage: str
) -> None:
    registry = pax_registry_factory(storage=storage)
    image = registry.push_image("team/app", "1")
    session = http()
    blob = registry.url_for(f"/v2/team/app/blobs/{image.layers[0]}")
    # A HEAD fills the blob descriptor cache, which must not answer for the deleted blob afterwards.
    assert session.head(blob).status_code == 200
    assert session.post(registry.url_for("/v2/open/upload/blobs/uploads/")).status_code == 202
    registry.faults.fail("GET", "/v2/", times=None)
    registry.expect("HEAD", "/v2/*")

    registry.reset()

    assert registry.requests == []
    assert registry.faults.rules == []
    assert not registry.strict
    assert registry.registry.driver.list("/") == []
    assert registry.s3 is None or registry.s3.list_keys() == []
    assert session.head(blob).status_code == 404
    assert session.get(registry.url_for("/v2/_catalog")).json() == {"repositories": []}
    assert registry.push_image("team/app", "2").digest != image.digest
    assert session.get(registry.url_for("/v2/team/app/tags/list")).json()["tags"] == ["2"]
    registry.check()


def test_reset_keeps_a_registry_strict_when_it_started_strict(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(strict=True)
    registry.expect("GET", "/v2/")

    registry.reset()

    assert registry.strict
    http().get(registry.url_for("/v2/"))
    with pytest.raises(AssertionError, match="1 unexpected request"):
        registry.check()


def test_a_session_registry_is_reset_between_tests(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def registry(pax_registry_session):
            pax_registry_session.reset()
            return pax_registry_session
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("name", ["first", "second"])
        def test_alone(registry, name):
            assert registry.session().get(registry.url_for("/v2/_catalog")).json() == {"repositories": []}
            registry.push_image(name, "1")
            registry.assert_request_made("GET", "/v2/_catalog")
        """
    )

    pytester.runpytest(*plugin_args(request.config)).assert_outcomes(passed=2)


def test_wait_for_requests_returns_once_a_background_client_made_them(pax_registry: RegistryServer) -> None:
    image = pax_registry.push_image("team/app", "1", layers=2)
    session = pax_registry.session()

    def pull() -> None:
        time.sleep(0.2)
        for digest in image.layers:
            session.get(pax_registry.url_for(f"/v2/team/app/blobs/{digest}"))

    client = threading.Thread(target=pull)
    client.start()
    try:
        blobs = pax_registry.wait_for_requests(2, timeout=30, method="GET", path="/v2/team/app/blobs/*")
    finally:
        client.join()

    assert [(entry.path, entry.status) for entry in blobs] == [
        (f"/v2/team/app/blobs/{digest}", 200) for digest in image.layers
    ]
    assert len(pax_registry.wait_for_requests(1, timeout=0)) == 2


def test_wait_for_requests_fails_with_what_the_log_holds(pax_registry: RegistryServer) -> None:
    http().get(pax_registry.url_for("/v2/"))

    with pytest.raises(AssertionError) as failure:
        pax_registry.wait_for_requests(2, timeout=0.2)
    with pytest.raises(AssertionError) as filtered:
        pax_registry.wait_for_requests(1, timeout=0, method="put", path="/v2/*/manifests/*")

    assert str(failure.value) == (
        "expected at least 2 request(s) within 0.2s, found 1\nall 1 request(s) served:\n  GET /v2/ -> 200"
    )
    assert str(filtered.value).startswith("expected at least 1 request(s) PUT /v2/*/manifests/* within 0s")


def test_check_lists_the_requests_no_expect_declared(pax_registry: RegistryServer) -> None:
    session = http()
    session.get(pax_registry.url_for("/v2/"))
    pax_registry.check()  # not strict: nothing is unexpected

    pax_registry.expect("GET", "/v2/")
    pax_registry.expect("*", re.compile(r"/v2/team/[a-z]+/tags/list"))
    session.get(pax_registry.url_for("/v2/team/app/tags/list"))
    pax_registry.check()
    session.get(pax_registry.url_for("/v2/_catalog?n=1"), headers={"Authorization": "Basic c2VjcmV0"})
    session.head(pax_registry.url_for("/v2/"))

    with pytest.raises(AssertionError) as failure:
        pax_registry.check()

    message = str(failure.value)
    assert message.startswith(f"2 unexpected request(s) to the strict registry {pax_registry!r}:\n")
    assert "  GET /v2/_catalog?n=1 -> 200\n" in message
    assert "  HEAD /v2/ -> 200\n" in message
    assert "Authorization: <redacted>" in message and "c2VjcmV0" not in message
    assert message.endswith("expected:\n  GET /v2/\n  * /v2/team/[a-z]+/tags/list")
    assert [entry.target for entry in pax_registry.unexpected_requests()] == ["/v2/_catalog?n=1", "/v2/"]
    pax_registry.check()  # each unexpected request is reported once
    session.get(pax_registry.url_for("/v2/_catalog"))
    with pytest.raises(AssertionError, match=r"^1 unexpected request"):
        pax_registry.check()


def test_strict_registries_that_got_only_expected_requests_pass(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makepyfile(
        """
        def test_expected(pax_registry):
            image = pax_registry.push_image("team/app", "1")
            pax_registry.expect("GET", "/v2/team/app/manifests/*")
            pax_registry.session().get(pax_registry.url_for("/v2/team/app/manifests/1"))

        def test_quiet(pax_registry_factory):
            pax_registry_factory(strict=True).push_image("seeding/is/not/a/request", "1")
        """
    )

    pytester.runpytest(*plugin_args(request.config)).assert_outcomes(passed=2)


def test_an_unexpected_request_fails_the_strict_fixture_with_the_list(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makepyfile(
        """
        def test_declared(pax_registry):
            pax_registry.expect("GET", "/v2/")
            pax_registry.session().get(pax_registry.url_for("/v2/_catalog"))

        def test_factory(pax_registry_factory):
            registry = pax_registry_factory(strict=True)
            registry.session().delete(registry.url_for("/v2/team/app/manifests/1"))
        """
    )

    result = pytester.runpytest_subprocess(*plugin_args(request.config))

    result.assert_outcomes(passed=2, errors=2)
    output = result.stdout.str()
    result.stdout.re_match_lines(
        [
            r"_+ ERROR at teardown of test_declared _+",
            r"1 unexpected request\(s\) to the strict registry <RegistryServer http://127\.0\.0\.1:\d+ .*>:",
            r"  GET /v2/_catalog -> 200",
            r"      Host: .*",
            r"expected:",
            r"  GET /v2/",
            r"_+ ERROR at teardown of test_factory _+",
            r"1 unexpected request\(s\) to the strict registry .*",
            r"  DELETE /v2/team/app/manifests/1 -> 404",
            r"      Host: .*",
            r"no request was expected \(declare them with registry.expect\(method, path\)\)",
        ],
        consecutive=False,
    )
    # The message alone: neither the fixture's nor the helper's source.
    assert "plugin.py" not in output and "handle.py" not in output


def test_a_shared_strict_registry_fails_the_test_that_made_the_request(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def registry(pax_registry_session):
            pax_registry_session.expect("GET", "/v2/")
            return pax_registry_session
        """
    )
    pytester.makepyfile(
        """
        def test_surprise(registry):
            registry.session().get(registry.url_for("/v2/_catalog"))

        def test_fine(registry):
            registry.session().get(registry.url_for("/v2/"))

        def test_shared_factory(pax_registry_factory_module):
            first, second = pax_registry_factory_module(strict=True), pax_registry_factory_module(strict=True)
            first.session().get(first.url_for("/v2/"))
            second.session().head(second.url_for("/v2/"))
        """
    )

    result = pytester.runpytest(*plugin_args(request.config))

    result.assert_outcomes(passed=3, errors=2)
    result.stdout.re_match_lines(
        [
            r"_+ ERROR at teardown of test_surprise _+",
            r"1 unexpected request\(s\) to the strict registry .*",
            r"  GET /v2/_catalog -> 200",
            r"_+ ERROR at teardown of test_shared_factory _+",
            r"1 unexpected request\(s\) to the strict registry .*",
            r"  GET /v2/ -> 200",
            r".*",
            r"no request was expected .*",
            r"1 unexpected request\(s\) to the strict registry .*",
            r"  HEAD /v2/ -> 200",
        ],
        consecutive=False,
    )
    assert "test_fine" not in result.stdout.str()


# -- scoped registries and overriding the configuration ---------------------------------------------------


def test_pax_registry_config_can_be_overridden(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def pax_registry_config():
            return {"http": {"headers": {"X-Team": ["platform"]}}, "storage": {"delete": {"enabled": False}}}
        """
    )
    pytester.makepyfile(
        """
        def test_configured(pax_registry):
            assert pax_registry.config.http.headers["X-Team"] == ("platform",)
            assert not pax_registry.config.storage.delete_enabled
            assert pax_registry.session().get(pax_registry.url_for("/v2/")).headers["X-Team"] == "platform"
        """
    )
    pytester.runpytest(*plugin_args(request.config)).assert_outcomes(passed=1)


def test_module_and_session_registries_are_shared_and_then_stopped(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    pytester.makepyfile(
        f"""
        URLS = {str(urls)!r}

        def record(*registries):
            with open(URLS, "a") as f:
                f.writelines(r.url + "\\n" for r in registries)

        def test_first(pax_registry_module, pax_registry_session, pax_registry_factory_module):
            pax_registry_module.push_image("kept/app", "1")
            shared = pax_registry_factory_module(headers={{"X-Shared": "yes"}})
            shared.push_image("kept/app", "1")
            record(pax_registry_module, pax_registry_session, shared)

        def test_second(pax_registry_module, pax_registry_session, pax_registry_factory_module):
            assert pax_registry_module.registry.manifest_exists("kept/app", "1")
            [shared] = pax_registry_factory_module.registries
            assert shared.registry.manifest_exists("kept/app", "1")
            record(pax_registry_module, pax_registry_session)
        """
    )

    pytester.runpytest(*plugin_args(request.config)).assert_outcomes(passed=2)

    module, session, shared, module_again, session_again = urls.read_text().split()
    assert (module, session) == (module_again, session_again)
    assert len({module, session, shared}) == 3
    assert all(refused(url) for url in (module, session, shared))


# -- pax_registry_factory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["mapping", "yaml", "path"])
def test_factory_takes_a_mapping_yaml_text_or_a_path(
    pax_registry_factory: RegistryFactory, tmp_path: Path, form: str
) -> None:
    yaml_text = "http:\n  headers:\n    X-Form: [given]\nstorage:\n  delete:\n    enabled: false\n"
    path = tmp_path / "config.yml"
    path.write_text(yaml_text)
    config: t.Any = {
        "mapping": {"http": {"headers": {"X-Form": ["given"]}}, "storage": {"delete": {"enabled": False}}},
        "yaml": yaml_text,
        "path": path,
    }[form]

    registry = pax_registry_factory(config)

    response = http().get(registry.url_for("/v2/"))
    assert response.headers["X-Form"] == "given"
    # Merged over the default: its security headers are still there.
    assert response.headers["X-Frame-Options"] == "DENY"
    assert not registry.config.storage.delete_enabled
    assert registry.config.storage.driver == "inmemory"


def test_a_configured_driver_replaces_the_default_one(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory({"storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}}})

    registry.push_image("disk/app", "1")

    assert registry.config.storage.driver == "filesystem"
    assert (tmp_path / "data/docker/registry/v2/repositories/disk/app").is_dir()
    assert "inmemory" not in (registry.document or {})["storage"]


def test_build_document_merges_in_order() -> None:
    document = build_document("storage: inmemory\nhttp: {secret: a}", {"http": {"secret": "b"}})
    assert document["storage"]["inmemory"] == {}
    assert document["storage"]["delete"] == {"enabled": True}
    assert document["http"]["secret"] == "b"
    assert document["http"]["addr"] == "127.0.0.1:0"


def test_factory_storage_filesystem(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(storage="filesystem")
    session = http()
    location = session.post(registry.url_for("/v2/disk/app/blobs/uploads/")).headers["Location"]

    response = session.put(f"{location}&digest={_sha256(b'on disk')}", data=b"on disk")

    assert response.status_code == 201
    root = Path(registry.config.storage.rootdirectory)
    [data] = root.glob("docker/registry/v2/blobs/sha256/*/*/data")
    assert data.read_bytes() == b"on disk"


@pytest.mark.parametrize(("delete", "status"), [(True, 202), (False, 405)])
def test_factory_delete_shortcut(pax_registry_factory: RegistryFactory, delete: bool, status: int) -> None:
    registry = pax_registry_factory(delete=delete)
    image = registry.push_image("team/app", "1")

    response = http().delete(registry.url_for(f"/v2/team/app/manifests/{image.digest}"))

    assert response.status_code == status
    assert registry.config.storage.delete_enabled is delete


def test_factory_headers_shortcut(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(headers={"X-One": "1", "X-Many": ["a", "b"]})

    response = http().get(registry.url_for("/v2/"))

    assert response.headers["X-One"] == "1"
    assert response.headers["X-Many"] == "a, b"


def test_factory_auth_uses_a_generated_htpasswd_user(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(auth=True)
    assert registry.htpasswd is not None and registry.username and registry.password
    assert registry.config.auth.htpasswd is not None
    assert registry.config.auth.htpasswd.path == str(registry.htpasswd.path)
    session = http()

    anonymous = session.get(registry.url_for("/v2/"))
    authorized = session.get(registry.url_for("/v2/"), auth=(registry.username, registry.password))
    registry.htpasswd.add("second", "pw-2")
    added = session.get(registry.url_for("/v2/"), auth=("second", "pw-2"))

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert authorized.status_code == 200
    assert added.status_code == 200
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_factory_auth_with_a_given_htpasswd(
    pax_registry_factory: RegistryFactory, pax_htpasswd: Htpasswd
) -> None:
    registry = pax_registry_factory(auth=pax_htpasswd)

    assert registry.auth == (pax_htpasswd.username, pax_htpasswd.password)
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_factory_tls(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True)
    assert registry.url.startswith("https://127.0.0.1:")
    assert registry.tls is not None and registry.ca_path == registry.tls.ca_path

    assert http().get(registry.url_for("/v2/"), verify=str(registry.ca_path)).status_code == 200
    by_name = registry.url_for("/v2/").replace("127.0.0.1", "localhost")
    assert http().get(by_name, verify=str(registry.ca_path)).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        http().get(registry.url_for("/v2/"), verify=True)
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_factory_client_auth_requires_a_client_certificate(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(client_auth=True)
    assert registry.client_cert is not None and registry.client_cert_path and registry.client_key_path
    assert registry.config.http.tls is not None
    assert registry.config.http.tls.clientcas == (str(registry.ca_path),)

    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        http().get(registry.url_for("/v2/"), verify=str(registry.ca_path))
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200
    assert registry.cert_dir is not None
    assert sorted(p.name for p in registry.cert_dir.iterdir()) == ["ca.crt", "client.cert", "client.key"]


def test_factory_tls_and_auth_together(pax_registry_factory: RegistryFactory, pax_tls: TLSFiles) -> None:
    registry = pax_registry_factory(tls=pax_tls, auth=True)

    assert registry.ca_path == pax_tls.ca_path
    assert http().get(registry.url_for("/v2/"), verify=str(pax_tls.ca_path)).status_code == 401
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_factory_stops_its_registries(tmp_path: Path) -> None:
    counter = iter(range(100))
    factory = RegistryFactory(lambda name: Path(tmp_path / f"{name}{next(counter)}"))
    first, second = factory(), factory(storage="filesystem")
    urls = [first.url, second.url]

    factory.stop_all()

    assert not first.is_running() and not second.is_running()
    assert all(refused(url) for url in urls)


def test_the_fixture_stops_registries_after_the_test(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    pytester.makepyfile(
        f"""
        def test_make(pax_registry, pax_registry_factory):
            made = [pax_registry, pax_registry_factory(), pax_registry_factory(auth=True, tls=True)]
            with open({str(urls)!r}, "w") as f:
                f.write(" ".join(r.url for r in made))
        """
    )

    pytester.runpytest(*plugin_args(request.config)).assert_outcomes(passed=1)

    made = urls.read_text().split()
    assert len(made) == 3
    assert all(refused(url) for url in made)


def test_unknown_storage_shortcut_is_an_error(pax_registry_factory: RegistryFactory) -> None:
    with pytest.raises(ValueError, match="unknown storage 'gcs'"):
        pax_registry_factory(storage="gcs")


def test_factory_s3_storage_stores_in_a_bucket(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(storage="s3")
    assert registry.s3 is not None
    session = http()
    location = session.post(registry.url_for("/v2/cloud/app/blobs/uploads/")).headers["Location"]

    pushed = session.put(f"{location}&digest={_sha256(b'in s3')}", data=b"in s3")
    fetched = session.get(registry.url_for(f"/v2/cloud/app/blobs/{_sha256(b'in s3')}"))

    assert pushed.status_code == 201
    assert fetched.content == b"in s3"
    keys = registry.s3.list_keys()
    assert (
        f"registry/docker/registry/v2/blobs/sha256/{_sha256(b'in s3')[7:9]}/{_sha256(b'in s3')[7:]}/data"
        in keys
    )
    registry.assert_request_made("GET", "/v2/cloud/app/blobs/*", status=200)


def test_factory_s3_storage_with_a_given_bucket(
    pax_registry_factory: RegistryFactory, pax_s3: S3Bucket
) -> None:
    registry = pax_registry_factory(storage=pax_s3)

    image = registry.push_image("cloud/app", "1")

    assert registry.config.storage.s3 is not None
    assert registry.config.storage.s3.bucket == pax_s3.bucket
    assert registry.config.storage.redirect_disable
    response = http().get(registry.url_for("/v2/cloud/app/manifests/1"), headers={"Accept": OCI_MANIFEST})
    assert response.content == image.manifest
    assert any(key.endswith("/_manifests/tags/1/current/link") for key in pax_s3.list_keys())


# -- pax_s3, pax_tls, pax_htpasswd -----------------------------------------------------------------------


def test_pax_s3_is_real_s3_over_http(pax_s3: S3Bucket) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", pax_s3.endpoint_url)
    assert pax_s3.list_keys() == []

    pax_s3.client.put_object(Bucket=pax_s3.bucket, Key="hello.txt", Body=b"hi")

    assert pax_s3.list_keys() == ["hello.txt"]
    # A plain HTTP client reads it too: this is a server on a socket, not a patched botocore.
    url = pax_s3.client.generate_presigned_url(
        "get_object", Params={"Bucket": pax_s3.bucket, "Key": "hello.txt"}
    )
    assert url.startswith(pax_s3.endpoint_url)
    assert http().get(url).content == b"hi"
    assert pax_s3.section["regionendpoint"] == pax_s3.endpoint_url
    assert pax_s3.section["bucket"] == pax_s3.bucket
    assert pax_s3.storage == {"s3": pax_s3.section, "redirect": {"disable": True}}


def test_pax_s3_gives_every_test_a_new_bucket(pax_s3: S3Bucket, pax_s3_server: t.Any) -> None:
    other = pax_s3_server.new_bucket()
    try:
        assert other.bucket != pax_s3.bucket
        assert other.endpoint_url == pax_s3.endpoint_url
    finally:
        other.delete()
    names = [bucket["Name"] for bucket in pax_s3.client.list_buckets()["Buckets"]]
    assert other.bucket not in names and pax_s3.bucket in names


def test_pax_tls_server_certificate_covers_loopback_names(pax_tls: TLSFiles) -> None:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(pax_tls.cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert pax_tls.key_path.read_text().startswith("-----BEGIN")
    assert pax_tls.server_config() == {"certificate": str(pax_tls.cert_path), "key": str(pax_tls.key_path)}


def test_pax_tls_serves_ipv6_loopback(pax_tls: TLSFiles) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        registry = RegistryServer({"http": {"tls": pax_tls.server_config()}}, host="::1")
    except OSError as e:
        pytest.skip(f"cannot bind ::1: {e}")
    with registry:
        assert registry.url.startswith("https://[::1]:")
        assert http().get(registry.url_for("/v2/"), verify=str(pax_tls.ca_path)).status_code == 200


def test_pax_tls_client_certificates_and_bundles(pax_tls: TLSFiles) -> None:
    alice = pax_tls.issue_client_cert("alice")

    assert pax_tls.issue_client_cert("alice") is alice
    assert alice.cert_path.exists() and alice.key_path.exists()
    assert pax_tls.client_context(alice).verify_mode == ssl.CERT_REQUIRED
    cert_dir = pax_tls.cert_dir(alice)
    assert (cert_dir / "ca.crt").read_bytes() == pax_tls.ca_path.read_bytes()
    assert (cert_dir / "client.cert").read_bytes() == alice.cert_path.read_bytes()
    bundle = pax_tls.bundle_path.read_bytes()
    assert bundle.endswith(pax_tls.ca_path.read_bytes())
    assert pax_tls.server_config(client_auth=True)["clientcas"] == [str(pax_tls.ca_path)]


def test_pax_htpasswd_writes_bcrypt_users(pax_htpasswd: Htpasswd) -> None:
    import bcrypt

    [line] = pax_htpasswd.path.read_text().splitlines()
    user, hashed = line.split(":", 1)
    assert user == pax_htpasswd.username
    assert hashed.startswith("$2b$05$")
    assert bcrypt.checkpw(pax_htpasswd.password.encode(), hashed.encode())

    pax_htpasswd.add("bob", "builder")

    assert [line.split(":")[0] for line in pax_htpasswd.path.read_text().splitlines()] == [
        pax_htpasswd.username,
        "bob",
    ]
    assert pax_htpasswd.section() == {"realm": "pax-registry", "path": str(pax_htpasswd.path)}


def test_a_registry_sees_users_added_while_it_runs(
    pax_registry_factory: RegistryFactory, pax_htpasswd: Htpasswd
) -> None:
    registry = pax_registry_factory(auth=pax_htpasswd)
    session = http()
    assert session.get(registry.url_for("/v2/"), auth=("late", "comer")).status_code == 401

    pax_htpasswd.add("late", "comer")

    assert session.get(registry.url_for("/v2/"), auth=("late", "comer")).status_code == 200


# -- fault injection ---------------------------------------------------------------------------------------


def test_fail_answers_once_with_an_oci_error_then_serves(pax_registry: RegistryServer) -> None:
    fault = pax_registry.faults.fail("GET", "/v2/*/tags/list")
    pax_registry.push_image("team/app", "1")
    session = http()

    failed = session.get(pax_registry.url_for("/v2/team/app/tags/list"))
    served = session.get(pax_registry.url_for("/v2/team/app/tags/list"))

    assert failed.status_code == 503
    assert failed.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert failed.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert "Retry-After" not in failed.headers
    assert served.json() == {"name": "team/app", "tags": ["1"]}
    assert fault.hits == 1 and fault.exhausted
    assert [(e.status, e.fault) for e in pax_registry.requests] == [(503, fault), (200, None)]


def test_too_many_requests_carries_retry_after(pax_registry: RegistryServer) -> None:
    pax_registry.faults.too_many_requests("GET", "/v2/", retry_after=7)

    response = http().get(pax_registry.url_for("/v2/"))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_fail_with_a_custom_status_code_and_retry_after(pax_registry: RegistryServer) -> None:
    pax_registry.faults.fail("HEAD", "/v2/*", status=500, code="UNKNOWN", retry_after=3)

    response = http().head(pax_registry.url_for("/v2/team/app/blobs/sha256:" + "0" * 64))

    assert response.status_code == 500
    assert response.headers["Retry-After"] == "3"
    assert response.content == b""
    pax_registry.assert_request_made("HEAD", "/v2/*", status=500)


def test_fault_times_and_matching(pax_registry: RegistryServer) -> None:
    faults = pax_registry.faults
    twice = faults.fail("GET", re.compile(r"/v2/[a-z]+/tags/list"), status=502, times=2)
    forever = faults.fail("DELETE", "*", status=403, times=None)
    session = http()

    statuses = [session.get(pax_registry.url_for("/v2/one/tags/list")).status_code for _ in range(3)]
    post = session.post(pax_registry.url_for("/v2/one/tags/list"))
    nested = session.get(pax_registry.url_for("/v2/one/two/tags/list"))
    deletes = [session.delete(pax_registry.url_for(f"/v2/x/manifests/{n}")).status_code for n in range(3)]

    assert statuses == [502, 502, 404]
    assert post.status_code == 405
    assert nested.status_code == 404
    assert deletes == [403, 403, 403]
    assert twice.exhausted and not forever.exhausted
    assert faults.pending == [forever]


def test_fault_arguments_are_checked(pax_registry: RegistryServer) -> None:
    with pytest.raises(ValueError, match="times"):
        pax_registry.faults.fail("GET", "/v2/", times=0)
    with pytest.raises(ValueError, match="HTTP status"):
        pax_registry.faults.fail("GET", "/v2/", status=42)
    with pytest.raises(ValueError, match="negative"):
        pax_registry.faults.delay("GET", "/v2/", seconds=-1)


def test_delay_holds_a_request_then_serves_it(pax_registry: RegistryServer) -> None:
    fault = pax_registry.faults.delay("GET", "/v2/", seconds=0.3)
    session = http()

    started = time.monotonic()
    delayed = session.get(pax_registry.url_for("/v2/"))
    elapsed = time.monotonic() - started
    quick = session.get(pax_registry.url_for("/v2/"))

    assert delayed.status_code == quick.status_code == 200
    assert elapsed >= 0.3
    assert [e.fault for e in pax_registry.requests] == [fault, None]


def test_the_log_of_a_delayed_request_shows_the_status_it_got(pax_registry: RegistryServer) -> None:
    pax_registry.faults.delay("GET", "/v2/", seconds=0)
    http().get(pax_registry.url_for("/v2/"))

    [entry] = pax_registry.requests

    assert entry.status == 200
    assert repr(pax_registry.requests) == "[<RecordedRequest GET /v2/ -> 200 [delay 0s on GET /v2/]>]"
    assert repr(pax_registry.faults.rules) == "[<Fault delay 0s on GET /v2/, times=1, hits=1>]"


def test_a_failed_upload_reads_the_body_so_the_client_sees_the_status(pax_registry: RegistryServer) -> None:
    pax_registry.faults.fail("PUT", "/v2/*/blobs/uploads/*")
    data = os.urandom(4 << 20)
    session = http()
    location = session.post(pax_registry.url_for("/v2/big/blob/blobs/uploads/")).headers["Location"]

    failed = session.put(f"{location}&digest={_sha256(data)}", data=data)
    retried = session.put(f"{location}&digest={_sha256(data)}", data=data)

    assert failed.status_code == 503
    assert retried.status_code == 201


def test_a_client_retry_succeeds_after_an_injected_503_and_429(pax_registry: RegistryServer) -> None:
    image = pax_registry.push_image("team/app", "1")
    pax_registry.faults.fail("GET", "/v2/*/manifests/*", status=503)
    pax_registry.faults.too_many_requests("GET", "/v2/*/manifests/*", retry_after=1)
    session = http()
    retry = Retry(total=3, status_forcelist=[429, 503], backoff_factor=0, respect_retry_after_header=True)
    session.mount("http://", HTTPAdapter(max_retries=retry))

    started = time.monotonic()
    response = session.get(pax_registry.url_for("/v2/team/app/manifests/1"), headers={"Accept": OCI_MANIFEST})
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.content == image.manifest
    assert [e.status for e in pax_registry.requests] == [503, 429, 200]
    # The client waited as told by Retry-After.
    assert elapsed >= 1.0


def test_a_client_retries_a_whole_blob_push(pax_registry: RegistryServer) -> None:
    pax_registry.faults.fail("POST", "/v2/*/blobs/uploads/", status=503)
    pax_registry.faults.too_many_requests("PUT", "/v2/*/blobs/uploads/*", retry_after=0)
    session = http()
    retry = Retry(total=4, status_forcelist=[429, 503], allowed_methods=None, backoff_factor=0)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    data = b"retried layer"

    location = session.post(pax_registry.url_for("/v2/team/app/blobs/uploads/")).headers["Location"]
    response = session.put(f"{location}&digest={_sha256(data)}", data=data)

    assert response.status_code == 201
    assert [(e.method, e.status) for e in pax_registry.requests] == [
        ("POST", 503),
        ("POST", 202),
        ("PUT", 429),
        ("PUT", 201),
    ]
    assert pax_registry.registry.blobs.is_linked("team/app", _digest(data))


def _digest(data: bytes) -> t.Any:
    from emulator.reference import Digest

    return Digest.parse(_sha256(data))


# -- live mode ---------------------------------------------------------------------------------------------


LIVE_TESTS = """
    def test_uses_the_live_registry(pax_registry):
        assert pax_registry.live
        assert pax_registry.url == {url!r}
        assert pax_registry.config is None
        image = pax_registry.push_image("live/app", "1", layers=2)
        response = pax_registry.session().get(pax_registry.url_for("/v2/live/app/tags/list"))
        assert response.json()["tags"] == ["1"]
        assert image.reference == {host!r} + "/live/app:1"

    def test_log_and_faults_skip(pax_registry):
        pax_registry.faults.fail("GET", "/v2/")

    def test_strict_mode_skips(pax_registry):
        pax_registry.reset()
        pax_registry.expect("GET", "/v2/")
"""


def test_live_mode_runs_the_same_tests_against_a_given_registry(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, pax_registry_factory: RegistryFactory
) -> None:
    target = pax_registry_factory()
    pytester.makepyfile(textwrap.dedent(LIVE_TESTS.format(url=target.url, host=target.host)))

    result = pytester.runpytest(*plugin_args(request.config), "--pax-registry-url", target.url, "-rs")

    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*fault injection is only available for an in-process registry*",
            "*strict mode is only available for an in-process registry*",
        ]
    )
    target.assert_request_made("PUT", "/v2/live/app/manifests/1", status=201)
    target.assert_request_made("PUT", "/v2/live/app/blobs/uploads/*", count=3, status=201)
    assert target.registry.manifest_exists("live/app", "1")


def test_live_mode_with_tls_and_credentials(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, pax_registry_factory: RegistryFactory
) -> None:
    target = pax_registry_factory(tls=True, auth=True)
    assert target.ca_path is not None and target.username and target.password
    pytester.makepyfile(textwrap.dedent(LIVE_TESTS.format(url=target.url, host=target.host)))

    result = pytester.runpytest(
        *plugin_args(request.config),
        f"--pax-registry-url={target.url}",
        f"--pax-registry-username={target.username}",
        f"--pax-registry-password={target.password}",
        f"--pax-registry-cacert={target.ca_path}",
    )

    result.assert_outcomes(passed=1, skipped=2)
    assert all(entry.headers.get("Authorization", "").startswith("Basic ") for entry in target.requests[-3:])


# -- installed in a fresh virtualenv, no conftest -----------------------------------------------------------


FRESH_VENV_TESTS = """
def test_registry(pax_registry):
    image = pax_registry.push_image("fresh/app", "1", layers=2, size=512)
    response = pax_registry.session().get(pax_registry.url_for("/v2/fresh/app/tags/list"))
    assert response.json() == {"name": "fresh/app", "tags": ["1"]}
    pax_registry.assert_request_made("GET", "/v2/fresh/app/tags/list")
    assert image.digest.startswith("sha256:")


def test_factory_with_auth_and_tls(pax_registry_factory, pax_htpasswd, pax_tls):
    registry = pax_registry_factory(auth=pax_htpasswd, tls=pax_tls)
    assert registry.url.startswith("https://")
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_faults(pax_registry):
    pax_registry.faults.too_many_requests("GET", "/v2/", retry_after=1)
    assert pax_registry.session().get(pax_registry.url_for("/v2/")).status_code == 429
"""


def _dependency_paths() -> list[str]:
    """Where this interpreter finds the project's dependencies, so the new venv needs no download."""
    candidates = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(path for path in candidates if os.path.isdir(path)))


def test_pip_installed_package_provides_the_fixtures_with_no_conftest(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Dependencies come from this environment through a .pth file, appended after the venv's own
    # site-packages: .pth files inside those directories are not processed, so an editable install of the
    # project there cannot shadow the copy pip installs into the venv.
    Path(purelib, "_pax_dependencies.pth").write_text("\n".join(_dependency_paths()) + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            str(PROJECT),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import pax_registry_fixtures as f, emulator as e; print(f.__file__); print(e.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=pytester.path,
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where
    pytester.makepyfile(test_fresh=FRESH_VENV_TESTS)
    assert not list(pytester.path.glob("conftest.py"))

    result = pytester.run(str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_fresh.py")

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*3 passed*"])


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
