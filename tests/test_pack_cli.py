"""``registry pack ...`` against real registries: the emulator (with pack validation and parent tags) and
Debian's ``docker-registry``, with oras-py on the other side of every push and pull."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import typing as t
import urllib.parse
from pathlib import Path

import pytest

import emulator
from emulator.cli import main
from emulator.packs import check
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import pack_archive
from pax_registry_fixtures import pack_dir
from pax_registry_fixtures.distribution import DistributionServer
from tests.clients import oras_client

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

NAME = "nginx"
REPOSITORY = f"spectro-packs/archive/{NAME}"


class Target(t.Protocol):
    @property
    def url(self) -> str: ...

    @property
    def host(self) -> str: ...


@pytest.fixture(params=["emulator", pytest.param("distribution", marks=pytest.mark.needs("docker-registry"))])
def target(request: pytest.FixtureRequest, pax_registry_factory: RegistryFactory) -> t.Iterator[Target]:
    """A registry the CLI talks to over HTTP: the emulator checking packs, or distribution 2.8."""
    if request.param == "emulator":
        yield pax_registry_factory(packs=True, delete=True)
        return
    with DistributionServer() as server:
        yield server


def pack(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``registry pack ARGS``; returns the status, stdout and stderr."""
    status = main(["pack", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def oras_push(host: str, archive: Path, reference: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``oras push HOST/REFERENCE NAME-VERSION.tar.gz`` from the archive's directory, as the docs run it
    (oras-py takes only paths below the working directory)."""
    with monkeypatch.context() as context:
        context.chdir(archive.parent)
        oras_client(host).push(files=[archive.name], target=f"{host}/{reference}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pack_pushed_with_the_cli_pulls_with_oras_byte_for_byte(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = pack_archive(tmp_path / "src", name=NAME, version="1.28.3")

    status, out, err = pack(["push", str(archive), "--registry", target.url], capsys)

    assert (status, err) == (0, "")
    assert out.startswith(f"{REPOSITORY}:1.28.3 sha256:")
    pulled = oras_client(target.host).pull(
        target=f"{target.host}/{REPOSITORY}:1.28.3", outdir=str(tmp_path / "oras")
    )
    assert [Path(path).name for path in pulled] == [archive.name]
    assert Path(pulled[0]).read_bytes() == archive.read_bytes()


def test_a_pack_pushed_with_oras_pulls_with_the_cli_byte_for_byte(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = pack_archive(tmp_path / "src", name=NAME, version="1.28.3")
    oras_push(target.host, archive, f"{REPOSITORY}:1.28.3", monkeypatch)

    status, out, err = pack(["pull", f"{NAME}:1.28.3", str(tmp_path / "cli"), "-r", target.url], capsys)

    assert (status, err) == (0, "")
    pulled = tmp_path / "cli" / archive.name
    assert out.strip() == str(pulled)
    assert pulled.read_bytes() == archive.read_bytes()


def test_the_cli_pushes_the_manifest_oras_pushes(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same config, same layer type and title: Palette reads both alike."""
    archive = pack_archive(tmp_path, name=NAME, version="1.28.3")
    oras_push(target.host, archive, f"other/{REPOSITORY}:1.28.3", monkeypatch)
    oras = oras_client(target.host)
    assert pack(["push", str(archive), "-r", target.url], capsys)[0] == 0

    by_oras = oras.get_manifest(f"{target.host}/other/{REPOSITORY}:1.28.3")
    by_cli = oras.get_manifest(f"{target.host}/{REPOSITORY}:1.28.3")

    assert by_cli["mediaType"] == by_oras["mediaType"]
    assert by_cli["config"] == by_oras["config"]
    assert by_cli["layers"] == by_oras["layers"]


def test_a_pack_directory_is_archived_under_its_name_and_version(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pack_dir(tmp_path / "src", name=NAME, version="2.0.1")

    assert pack(["push", str(folder), "-r", target.url], capsys)[0] == 0
    status, out, _ = pack(["pull", f"{NAME}:2.0.1", str(tmp_path / "out"), "-r", target.url, "-x"], capsys)

    assert status == 0
    assert Path(out.strip()).name == f"{NAME}-2.0.1.tar.gz"
    for member in ("pack.json", "values.yaml", "logo.png", "README.md", "manifests/x.yaml"):
        extracted = tmp_path / "out" / folder.name / member
        assert extracted.read_bytes() == (folder / member).read_bytes(), member


def test_an_existing_version_is_replaced_only_with_force(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = pack_archive(tmp_path / "a", name=NAME, version="1.0.0")
    second = pack_archive(tmp_path / "b", name=NAME, version="1.0.0", displayName="Changed")
    assert sha256(first) != sha256(second)
    assert pack(["push", str(first), "-r", target.url], capsys)[0] == 0

    status, out, err = pack(["push", str(second), "-r", target.url], capsys)

    assert (status, out) == (1, "")
    assert err == f"pack push: {REPOSITORY}:1.0.0 exists already: --force replaces it\n"
    assert pack(["pull", f"{NAME}:1.0.0", str(tmp_path / "kept"), "-r", target.url], capsys)[0] == 0
    assert (tmp_path / "kept" / first.name).read_bytes() == first.read_bytes()

    assert pack(["push", str(second), "-r", target.url, "--force"], capsys)[0] == 0
    assert pack(["pull", f"{NAME}:1.0.0", str(tmp_path / "new"), "-r", target.url], capsys)[0] == 0
    assert (tmp_path / "new" / second.name).read_bytes() == second.read_bytes()


def test_ls_lists_packs_under_the_prefix_with_their_versions(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, version in (("nginx", "1.28.3"), ("nginx", "1.27.1"), ("redis", "7.2.0")):
        archive = pack_archive(tmp_path / f"{name}{version}", name=name, version=version)
        assert pack(["push", str(archive), "-r", target.url, "--prefix", "team"], capsys)[0] == 0
    other = pack_archive(tmp_path / "other", name="elsewhere", version="1.0.0")
    assert pack(["push", str(other), "-r", target.url], capsys)[0] == 0

    status, out, err = pack(["ls", "-r", target.url, "--prefix", "team"], capsys)

    assert (status, err) == (0, "")
    listing = {line.split("\t")[0]: line.split("\t")[1].split() for line in out.splitlines()}
    assert list(listing) == ["nginx", "redis"]
    # Versions first, in version order; the emulator adds its parent tags after them.
    assert listing["nginx"][:2] == ["1.27.1", "1.28.3"]
    assert listing["redis"][:1] == ["7.2.0"]
    status, out, _ = pack(["ls", "-r", target.url, "--prefix", "team", "--name", "redis"], capsys)
    assert status == 0
    assert out.splitlines()[0].startswith("redis\t7.2.0")


def test_pull_without_a_version_takes_the_highest_release(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for version in ("1.27.1", "1.28.3", "1.29.0-rc.1"):
        archive = pack_archive(tmp_path / version, name=NAME, version=version)
        assert pack(["push", str(archive), "-r", target.url], capsys)[0] == 0

    status, out, _ = pack(["pull", NAME, str(tmp_path / "out"), "-r", target.url], capsys)

    assert status == 0
    assert Path(out.strip()).name == f"{NAME}-1.28.3.tar.gz"


def test_pull_by_digest(target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = pack_archive(tmp_path, name=NAME, version="1.0.0")
    _, out, _ = pack(["push", str(archive), "-r", target.url], capsys)
    digest = out.split()[1]

    status, out, _ = pack(["pull", f"{NAME}@{digest}", str(tmp_path / "out"), "-r", target.url], capsys)

    assert status == 0
    assert Path(out.strip()).read_bytes() == archive.read_bytes()


def test_tag_add_then_delete_on_a_registry_that_deletes_tags(
    pax_registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = pax_registry_factory(delete=True)
    archive = pack_archive(tmp_path, name=NAME, version="14.4.3")
    assert pack(["push", str(archive), "-r", registry.url], capsys)[0] == 0

    status, out, err = pack(
        ["tag", "add", f"{NAME}:14.4.3", "14.4.3", "-g", "lts", "-r", registry.url], capsys
    )

    assert (status, out, err) == (0, "lts__14.4.3\n", "")
    manifest = registry.registry.get_manifest(REPOSITORY, "lts__14.4.3")
    assert manifest.digest == registry.registry.get_manifest(REPOSITORY, "14.4.3").digest
    assert pack(["tag", "delete", f"{NAME}:lts__14.4.3", "-r", registry.url], capsys)[0] == 0
    _, out, _ = pack(["ls", "-r", registry.url, "-n", NAME], capsys)
    assert out == f"{NAME}\t14.4.3\n"


@pytest.mark.needs("docker-registry")
def test_tag_delete_on_distribution_says_it_does_not_delete_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = pack_archive(tmp_path, name=NAME, version="1.0.0")
    with DistributionServer() as server:
        assert pack(["push", str(archive), "-r", server.url], capsys)[0] == 0
        assert pack(["tag", "add", f"{NAME}:1.0.0", "stable", "-r", server.url], capsys)[0] == 0

        status, out, err = pack(["tag", "delete", f"{NAME}:stable", "-r", server.url], capsys)

        assert (status, out) == (1, "")
        assert err.startswith("pack tag: the registry does not delete tags: DELETE ")
        assert "400 DIGEST_INVALID" in err
        assert err.count("\n") == 1


def test_build_archives_a_valid_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = pack_dir(tmp_path, name=NAME, version="1.0.0")
    output = tmp_path / "out.tar.gz"

    status, out, err = pack(["build", str(folder), "-o", str(output)], capsys)

    assert (status, out, err) == (0, f"{output}\n", "")
    assert check(output) == []
    with tarfile.open(output, "r:gz") as archive:
        names = archive.getnames()
    assert {name.split("/", 1)[0] for name in names} == {folder.name}
    assert f"{folder.name}/logo.png" in names


def test_build_refuses_a_bad_pack_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pack_dir(tmp_path, name=NAME, version="1.0.0", layer="database", displayName=None)
    (folder / "logo.png").unlink()
    output = tmp_path / "out.tar.gz"

    status, out, err = pack(["build", str(folder), "-o", str(output)], capsys)

    assert (status, out) == (1, "")
    assert err.count("\n") == 1
    assert "3 problem(s)" in err
    for problem in ("logo.png:", "$.displayName:", "$.layer:"):
        assert problem in err
    assert not output.exists()


def test_push_checks_the_pack_first_and_the_emulator_refuses_it_too(
    pax_registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = pax_registry_factory(packs=True)
    archive = pack_archive(tmp_path, name=NAME, version="1.0.0", layer="database")

    status, _, err = pack(["push", str(archive), "-r", registry.url], capsys)

    assert status == 1
    assert "$.layer:" in err
    assert registry.requests == []
    status, _, err = pack(["push", str(archive), "-r", registry.url, "--skip-validation"], capsys)
    assert status == 1
    assert err.startswith(f"pack push: PUT /v2/{REPOSITORY}/manifests/1.0.0: 400 MANIFEST_INVALID")
    assert err.count("\n") == 1
    assert not registry.registry.manifest_exists(REPOSITORY, "1.0.0")


def test_credentials_and_ca_come_from_the_options_or_the_environment(
    pax_registry_factory: RegistryFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = pax_registry_factory(auth=True, tls=True)
    assert registry.username is not None and registry.password is not None and registry.ca_path is not None
    archive = pack_archive(tmp_path, name=NAME, version="1.0.0")
    status, _, err = pack(
        ["push", str(archive), "-r", registry.url, "--cacert", str(registry.ca_path)], capsys
    )
    assert status == 1
    assert f"/v2/{REPOSITORY}/manifests/1.0.0: 401 Unauthorized" in err

    options = ["--username", registry.username, "--password", registry.password]
    status, _, err = pack(
        ["push", str(archive), "-r", registry.url, "--cacert", str(registry.ca_path), *options], capsys
    )
    assert (status, err) == (0, "")

    monkeypatch.setenv("PAX_REGISTRY_USERNAME", registry.username)
    monkeypatch.setenv("PAX_REGISTRY_PASSWORD", registry.password)
    monkeypatch.setenv("PAX_REGISTRY_CACERT", str(registry.ca_path))
    status, out, err = pack(["ls", "-r", registry.url], capsys)
    assert (status, out, err) == (0, f"{NAME}\t1.0.0\n", "")


def test_an_unverifiable_certificate_is_one_line_unless_insecure(
    pax_registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = pax_registry_factory(tls=True)

    status, _, err = pack(["ls", "-r", registry.host], capsys)

    assert status == 1
    assert err.startswith(f"pack ls: cannot reach https://{registry.host}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in err
    assert err.count("\n") == 1
    assert pack(["ls", "-r", registry.host, "--insecure"], capsys)[:2] == (0, "")
    plain = pax_registry_factory()
    assert pack(["ls", "-r", plain.host, "--insecure"], capsys)[:2] == (0, "")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["pull", "nginx:9.9.9", "out", "-r", "{url}"],
            "pack pull: GET /v2/spectro-packs/archive/nginx/"
            "manifests/9.9.9: 404 MANIFEST_UNKNOWN: manifest unknown",
        ),
        (
            ["pull", "nginx", "out", "-r", "{url}"],
            "pack pull: spectro-packs/archive/nginx: no release version",
        ),
        (["ls"], "pack ls: --registry URL is required (or PAX_REGISTRY_URL)"),
        (["ls", "-n", "nginx", "-r", "{url}"], "pack ls: spectro-packs/archive/nginx: no such pack"),
        (["push", "missing.tar.gz", "-r", "{url}"], "pack push: missing.tar.gz: no such file or directory"),
        (["ls", "-r", "ftp://x"], "pack ls: ftp://x: not a registry URL"),
        (["ls", "-r", "{url}", "--cacert", "missing.pem"], "pack ls: missing.pem: not a usable CA bundle"),
        (["tag", "add", "nginx", "x", "-r", "{url}"], "pack tag: nginx: give NAME:VERSION or NAME@DIGEST"),
    ],
)
def test_mistakes_are_one_line_and_status_1(
    args: list[str],
    expected: str,
    pax_registry_factory: RegistryFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAX_REGISTRY_URL", raising=False)
    registry = pax_registry_factory()

    status, out, err = pack([arg.format(url=registry.url) for arg in args], capsys)

    assert (status, out) == (1, "")
    assert err.startswith(expected)
    assert err.count("\n") == 1


def test_python_m_emulator_pack_runs_the_cli(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    registry = pax_registry_factory(packs=True)
    archive = pack_archive(tmp_path, name=NAME, version="1.0.0")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "emulator", "pack", *args, "-r", registry.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    pushed = run("push", str(archive))
    again = run("push", str(archive))

    assert (pushed.returncode, pushed.stderr) == (0, "")
    manifest = json.loads(registry.registry.get_manifest(REPOSITORY, "1.0.0").content)
    assert manifest["layers"][0]["annotations"] == {"org.opencontainers.image.title": archive.name}
    assert again.returncode == 1
    assert again.stderr == f"pack push: {REPOSITORY}:1.0.0 exists already: --force replaces it\n"


def test_pull_writes_only_inside_the_target_directory(
    pax_registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A title is the pusher's to choose, and so are the archive's member paths."""
    registry = pax_registry_factory()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as archive:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 4
        archive.addfile(member, io.BytesIO(b"evil"))
    layer = registry.push_blob(REPOSITORY, payload.getvalue())
    config = registry.push_blob(REPOSITORY, b"{}")
    registry.push_manifest(
        REPOSITORY,
        "1.0.0",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.unknown.config.v1+json", "digest": config, "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer,
                    "size": len(payload.getvalue()),
                    "annotations": {"org.opencontainers.image.title": "../../outside.tar.gz"},
                }
            ],
        },
    )
    target = tmp_path / "deep" / "out"

    status, out, err = pack(["pull", f"{NAME}:1.0.0", str(target), "-r", registry.url, "--extract"], capsys)

    assert (status, out) == (1, "")
    assert err.startswith(f"pack pull: {target / 'outside.tar.gz'}: cannot extract: ")
    assert err.count("\n") == 1
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["deep", "out", "outside.tar.gz"]


class TokenRealm:
    """A registry behind Bearer tokens (as Docker Hub and most hosted registries are): ``/token`` hands a
    token per scope to Basic credentials, and the wrapped registry wants one on every request."""

    def __init__(self, registry: WSGIApplication, username: str, password: str) -> None:
        self.registry = registry
        self.credentials = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.url = ""
        #: The scope of every token handed out.
        self.scopes: list[str] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/token":
            if environ.get("HTTP_AUTHORIZATION") != self.credentials:
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
            scope = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))["scope"][0]
            self.scopes.append(scope)
            body = json.dumps({"token": f"token-for {scope}"}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        repository = path.removeprefix("/v2/").partition("/manifests/")[0].partition("/blobs/")[0]
        scope = f"repository:{repository}:pull,push"
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer token-for {scope}":
            challenge = f'Bearer realm="{self.url}/token",service="registry",scope="{scope}"'
            start_response("401 Unauthorized", [("WWW-Authenticate", challenge), ("Content-Length", "0")])
            return [b""]
        return self.registry(environ, start_response)


def test_bearer_tokens_are_fetched_from_the_challenges_realm(
    pax_registry_factory: RegistryFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = pax_registry_factory()
    realm = TokenRealm(backend.middleware, "pusher", "s3cret")
    with emulator.serve_wsgi(realm) as server:
        realm.url = server.url
        archive = pack_archive(tmp_path, name=NAME, version="1.0.0")
        credentials = ["--username", "pusher", "--password", "s3cret"]

        pushed = pack(["push", str(archive), "-r", server.url, *credentials], capsys)
        pulled = pack(
            ["pull", f"{NAME}:1.0.0", str(tmp_path / "out"), "-r", server.url, *credentials], capsys
        )
        refused = pack(["pull", f"{NAME}:1.0.0", str(tmp_path / "no"), "-r", server.url], capsys)

    assert pushed[0] == pulled[0] == 0
    assert (tmp_path / "out" / archive.name).read_bytes() == archive.read_bytes()
    # One token per command (push, pull), reused for every request in the repository.
    assert realm.scopes == [f"repository:{REPOSITORY}:pull,push"] * 2
    assert refused[0] == 1
    assert refused[2] == (
        f"pack pull: GET /token: 401 Unauthorized: no token for repository:{REPOSITORY}:pull,push\n"
    )
