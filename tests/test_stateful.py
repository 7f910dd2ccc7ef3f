"""A property-based stateful test of the registry's HTTP API against a model of a registry.

Hypothesis drives random sequences of monolithic and chunked pushes, mounts, manifest and tag PUTs, tag
moves, deletes and reads against a fresh in-process registry per example (on inmemory and on filesystem
storage), and every answer (status, error code, ``Docker-Content-Digest``, upload ``Range``, bodies, tag
lists, catalog, ``Link``) must equal what :class:`tests.registry_model.RegistryModel` predicts. On failure,
Hypothesis prints the shortest sequence of steps it found that still fails, as Python to replay.

Runs are derandomized (the same sequences on every run, so CI is reproducible); raise ``max_examples`` in
:data:`SETTINGS` locally to search further.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import initialize
from hypothesis.stateful import multiple
from hypothesis.stateful import rule
from hypothesis.stateful import run_state_machine_as_test

from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.server import RegistryServer
from tests.registry_model import OCI_MANIFEST
from tests.registry_model import Answer
from tests.registry_model import RegistryModel
from tests.registry_model import image_manifest
from tests.registry_model import sha256

SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    # HTTP round trips take what the machine gives them; a slow step is not a failure here.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Few components, so that names collide and nest (``a`` and ``a/b`` are both repositories).
LEAVES = st.sampled_from(["a", "b", "lib", "x-y", "z.q", "u__v"])
NAMES = st.lists(LEAVES, min_size=1, max_size=2).map("/".join)
#: Few tags, so that PUTs on an existing tag (moves) are common; sorted, ``V2`` precedes ``a_b``.
TAG_NAMES = st.sampled_from(["1", "V2", "a_b", "latest", "v1", "v1.0", "z-9"])
CONTENT = st.binary(max_size=48)
#: A small salt: equal manifests (same digest) land in several repositories and under several tags.
SALTS = st.integers(min_value=0, max_value=3)
PAGE_SIZES = st.none() | st.integers(min_value=0, max_value=4)

#: Request logs of thousands of steps are noise in a failure report; errors still show.
QUIET: dict[str, t.Any] = {"log": {"level": "error", "accesslog": {"disabled": True}}}


@dataclass(frozen=True)
class Blob:
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)


@dataclass(frozen=True)
class Manifest:
    content: bytes
    #: The blobs it needs in the repository: its config and layers.
    needs: tuple[str, ...]

    @property
    def digest(self) -> str:
        return sha256(self.content)


@dataclass(frozen=True)
class UploadRef:
    """An upload the registry opened: its id, and (in the machine) its latest ``Location``."""

    name: str
    id: str


@dataclass(frozen=True)
class TagRef:
    name: str
    tag: str


class RegistryMachine(RuleBasedStateMachine):
    """Steps are rules; each sends one or a few requests and compares every answer with the model."""

    repositories = Bundle("repositories")
    blobs = Bundle("blobs")
    manifests = Bundle("manifests")
    uploads = Bundle("uploads")
    tags = Bundle("tags")

    def __init__(self, factory: RegistryFactory, storage: str) -> None:
        super().__init__()
        self.registry: RegistryServer = factory(storage=storage, delete=True, config=QUIET)
        self.http = self.registry.session()
        self.model = RegistryModel()
        #: The newest ``Location`` of each upload: its ``_state`` token must follow the upload's offset.
        self.locations: dict[str, str] = {}
        #: Each upload's first ``Location``, whose ``_state`` says offset 0.
        self.first_locations: dict[str, str] = {}

    def teardown(self) -> None:
        self.http.close()
        self.registry.stop()

    # -- HTTP and comparison ----------------------------------------------------------------------

    def send(self, method: str, path_or_url: str, **kwargs: t.Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.registry.url_for(path_or_url)
        return self.http.request(method, url, timeout=30, **kwargs)

    def expect(self, response: requests.Response, answer: Answer) -> None:
        """Fail with every difference between ``response`` and ``answer`` and the exchange that made it."""
        problems: list[str] = []

        def differs(what: str, actual: object, expected: object) -> None:
            if actual != expected:
                problems.append(f"{what}: expected {expected!r}, got {actual!r}")

        differs("status", response.status_code, answer.status)
        has_body = response.request.method != "HEAD"
        if answer.code is not None and has_body:
            differs("error code", _error_code(response), answer.code)
        if answer.detail_digests is not None:
            differs("error detail digests", _detail_digests(response), answer.detail_digests)
        if answer.digest is not None:
            differs("Docker-Content-Digest", response.headers.get("Docker-Content-Digest"), answer.digest)
        if answer.range is not None:
            differs("Range", response.headers.get("Range"), answer.range)
        if answer.body is not None:
            if has_body:
                differs("body", response.content, answer.body)
            differs("Content-Length", response.headers.get("Content-Length"), str(len(answer.body)))
        if answer.document is not None:
            differs("document", _json(response), answer.document)
        if answer.link is not None:
            differs("Link", response.headers.get("Link", ""), answer.link)
        if answer.location is not None:
            differs("Location path", urlsplit(response.headers.get("Location", "")).path, answer.location)
        if problems:
            request = response.request
            raise AssertionError(
                f"{request.method} {request.url} (request headers {dict(request.headers)}):\n  "
                + "\n  ".join(problems)
                + f"\nresponse {response.status_code} {dict(response.headers)}\n{response.content[:500]!r}"
            )

    def remember_upload(self, name: str, response: requests.Response) -> UploadRef:
        upload_id = response.headers["Docker-Upload-UUID"]
        location = urlsplit(response.headers["Location"]).path
        assert location == f"/v2/{name}/blobs/uploads/{upload_id}", f"upload Location {location}"
        self.model.opened(upload_id, name)
        self.locations[upload_id] = self.first_locations[upload_id] = response.headers["Location"]
        return UploadRef(name, upload_id)

    def follow(self, upload: UploadRef, response: requests.Response) -> None:
        if "Location" in response.headers and response.status_code < 300:
            self.locations[upload.id] = response.headers["Location"]

    # -- names and contents: what the other rules draw from ----------------------------------------

    @initialize(target=repositories, names=st.lists(NAMES, min_size=1, max_size=3, unique=True))
    def first_repositories(self, names: list[str]) -> t.Any:
        return multiple(*names)

    @initialize(target=blobs, contents=st.lists(CONTENT, min_size=1, max_size=4, unique=True))
    def first_blobs(self, contents: list[bytes]) -> t.Any:
        return multiple(*(Blob(data) for data in contents))

    @rule(target=repositories, name=NAMES)
    def name_repository(self, name: str) -> str:
        return name

    @rule(target=repositories, parent=repositories, leaf=LEAVES)
    def name_nested_repository(self, parent: str, leaf: str) -> str:
        """A repository inside another's path: both must stay separate repositories."""
        nested = f"{parent}/{leaf}"
        # Names stay far below the 255-character limit, whose NAME_INVALID the model does not know.
        return nested if len(nested) <= 64 else parent

    @rule(target=blobs, data=CONTENT)
    def make_blob(self, data: bytes) -> Blob:
        """Content that may or may not be pushed anywhere: pushes and reads draw from it."""
        return Blob(data)

    # -- monolithic pushes ------------------------------------------------------------------------

    @rule(name=repositories, blob=blobs)
    def push_with_post_digest(self, name: str, blob: Blob) -> None:
        response = self.send("POST", f"/v2/{name}/blobs/uploads/?digest={blob.digest}", data=blob.data)
        self.expect(response, self.model.push_blob(name, blob.data))

    @rule(name=repositories, blob=blobs)
    def push_with_post_put(self, name: str, blob: Blob) -> None:
        started = self.send("POST", f"/v2/{name}/blobs/uploads/")
        self.expect(started, self.model.start_upload(name))
        upload = self.remember_upload(name, started)
        finished = self.send("PUT", _with_digest(self.locations[upload.id], blob.digest), data=blob.data)
        self.expect(finished, self.model.finish(upload.id, blob.data, blob.digest))

    @rule(name=repositories, blob=blobs, other=blobs)
    def push_with_wrong_digest(self, name: str, blob: Blob, other: Blob) -> None:
        if blob.digest == other.digest:
            return
        response = self.send("POST", f"/v2/{name}/blobs/uploads/?digest={other.digest}", data=blob.data)
        self.expect(response, self.model.push_blob_with_wrong_digest(name))

    # -- chunked pushes: open, patch, check, finish or cancel, interleaved with everything else -------

    @rule(target=uploads, name=repositories)
    def start_upload(self, name: str) -> UploadRef:
        response = self.send("POST", f"/v2/{name}/blobs/uploads/")
        self.expect(response, self.model.start_upload(name))
        return self.remember_upload(name, response)

    @rule(upload=uploads, chunk=CONTENT.filter(bool), with_range=st.booleans())
    def patch_chunk(self, upload: UploadRef, chunk: bytes, with_range: bool) -> None:
        state = self.model.uploads[upload.id]
        start = len(state.data) if with_range else None
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(chunk) - 1}"
        response = self.send("PATCH", self.locations[upload.id], data=chunk, headers=headers)
        self.expect(response, self.model.patch(upload.id, chunk, start))
        self.follow(upload, response)

    @rule(upload=uploads, chunk=CONTENT.filter(bool), shift=st.sampled_from([-2, -1, 1, 5]))
    def patch_out_of_order(self, upload: UploadRef, chunk: bytes, shift: int) -> None:
        start = len(self.model.uploads[upload.id].data) + shift
        if start < 0:
            return
        headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}"}
        response = self.send("PATCH", self.locations[upload.id], data=chunk, headers=headers)
        self.expect(response, self.model.patch(upload.id, chunk, start))

    @rule(upload=uploads, chunk=CONTENT.filter(bool))
    def patch_with_first_location(self, upload: UploadRef, chunk: bytes) -> None:
        """The first ``Location`` is stale once the upload holds data: 416, and nothing is appended."""
        response = self.send("PATCH", self.first_locations[upload.id], data=chunk)
        self.expect(response, self.model.patch_at(upload.id, chunk, 0))
        self.follow(upload, response)

    @rule(upload=uploads)
    def upload_status(self, upload: UploadRef) -> None:
        response = self.send("GET", self.locations[upload.id])
        self.expect(response, self.model.upload_status(upload.id))
        self.follow(upload, response)

    @rule(target=blobs, upload=uploads, last=CONTENT, right_digest=st.booleans())
    def finish_upload(self, upload: UploadRef, last: bytes, right_digest: bool) -> Blob | t.Any:
        state = self.model.uploads[upload.id]
        data = state.data + last
        digest = sha256(data) if right_digest else sha256(data + b"!")
        response = self.send("PUT", _with_digest(self.locations[upload.id], digest), data=last)
        self.expect(response, self.model.finish(upload.id, last, digest))
        return Blob(data) if response.status_code == 201 else multiple()

    @rule(upload=uploads)
    def cancel_upload(self, upload: UploadRef) -> None:
        response = self.send("DELETE", self.locations[upload.id])
        self.expect(response, self.model.cancel(upload.id))

    # -- mounts -----------------------------------------------------------------------------------

    @rule(target=uploads, name=repositories, blob=blobs, source=repositories)
    def mount(self, name: str, blob: Blob, source: str) -> UploadRef | t.Any:
        query = urlencode({"mount": blob.digest, "from": source})
        response = self.send("POST", f"/v2/{name}/blobs/uploads/?{query}")
        self.expect(response, self.model.mount(name, blob.digest, source))
        if response.status_code == 202:
            return self.remember_upload(name, response)
        return multiple()

    # -- manifests and tags -----------------------------------------------------------------------

    @rule(
        target=manifests,
        name=repositories,
        config=blobs,
        layers=st.lists(blobs, max_size=3),
        salt=SALTS,
        tag=st.none() | TAG_NAMES,
    )
    def put_manifest(
        self, name: str, config: Blob, layers: list[Blob], salt: int, tag: str | None
    ) -> Manifest | t.Any:
        """A manifest over blobs that may or may not be in the repository, by tag or by digest."""
        manifest = _manifest(config, layers, salt)
        return manifest if self._put_manifest(name, tag or manifest.digest, manifest) else multiple()

    @rule(
        target=tags,
        name=repositories,
        config=blobs,
        layers=st.lists(blobs, max_size=3),
        salt=SALTS,
        tag=TAG_NAMES,
    )
    def push_image(self, name: str, config: Blob, layers: list[Blob], salt: int, tag: str) -> TagRef | t.Any:
        """Blobs first, then the manifest over them under a tag: the path every client takes."""
        for blob in (config, *layers):
            self.push_with_post_digest(name, blob)
        return (
            TagRef(name, tag)
            if self._put_manifest(name, tag, _manifest(config, layers, salt))
            else multiple()
        )

    @rule(target=tags, name=repositories, manifest=manifests, tag=TAG_NAMES)
    def put_manifest_by_tag(self, name: str, manifest: Manifest, tag: str) -> TagRef | t.Any:
        """A known manifest under a tag of any repository: a new tag, or a move of an existing one."""
        return TagRef(name, tag) if self._put_manifest(name, tag, manifest) else multiple()

    @rule(tag=tags, manifest=manifests)
    def move_tag(self, tag: TagRef, manifest: Manifest) -> None:
        self._put_manifest(tag.name, tag.tag, manifest)

    @rule(name=repositories, manifest=manifests)
    def put_manifest_by_digest(self, name: str, manifest: Manifest) -> None:
        self._put_manifest(name, manifest.digest, manifest)

    @rule(name=repositories, config=blobs, salt=SALTS, tag=TAG_NAMES)
    def put_manifest_with_unknown_blob(self, name: str, config: Blob, salt: int, tag: str) -> None:
        """A layer no one ever pushed: refused whatever else the repository holds."""
        missing = sha256(b"never pushed: longer than any content drawn" + bytes(salt))
        needs = (config.digest, missing)
        self._put_manifest(name, tag, Manifest(image_manifest(config.digest, [missing], salt), needs))

    def _put_manifest(self, name: str, reference: str, manifest: Manifest) -> bool:
        response = self.send(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            data=manifest.content,
            headers={"Content-Type": OCI_MANIFEST},
        )
        self.expect(response, self.model.put_manifest(name, reference, manifest.content, manifest.needs))
        return response.status_code == 201

    @rule(name=repositories, manifest=manifests)
    def delete_manifest(self, name: str, manifest: Manifest) -> None:
        response = self.send("DELETE", f"/v2/{name}/manifests/{manifest.digest}")
        self.expect(response, self.model.delete_manifest(name, manifest.digest))

    @rule(tag=tags)
    def delete_tag(self, tag: TagRef) -> None:
        response = self.send("DELETE", f"/v2/{tag.name}/manifests/{tag.tag}")
        self.expect(response, self.model.delete_tag(tag.name, tag.tag))

    @rule(name=repositories, tag=TAG_NAMES)
    def delete_any_tag(self, name: str, tag: str) -> None:
        response = self.send("DELETE", f"/v2/{name}/manifests/{tag}")
        self.expect(response, self.model.delete_tag(name, tag))

    @rule(name=repositories, blob=blobs)
    def delete_blob(self, name: str, blob: Blob) -> None:
        response = self.send("DELETE", f"/v2/{name}/blobs/{blob.digest}")
        self.expect(response, self.model.delete_blob(name, blob.digest))

    # -- reads ------------------------------------------------------------------------------------

    @rule(name=repositories, blob=blobs, method=st.sampled_from(["GET", "HEAD"]))
    def read_blob(self, name: str, blob: Blob, method: str) -> None:
        response = self.send(method, f"/v2/{name}/blobs/{blob.digest}")
        self.expect(response, self.model.get_blob(name, blob.digest))

    @rule(tag=tags, method=st.sampled_from(["GET", "HEAD"]))
    def read_manifest_by_tag(self, tag: TagRef, method: str) -> None:
        response = self.send(method, f"/v2/{tag.name}/manifests/{tag.tag}", headers={"Accept": OCI_MANIFEST})
        self.expect(response, self.model.get_manifest(tag.name, tag.tag))

    @rule(name=repositories, tag=TAG_NAMES, method=st.sampled_from(["GET", "HEAD"]))
    def read_manifest_by_any_tag(self, name: str, tag: str, method: str) -> None:
        response = self.send(method, f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        self.expect(response, self.model.get_manifest(name, tag))

    @rule(name=repositories, manifest=manifests, method=st.sampled_from(["GET", "HEAD"]))
    def read_manifest_by_digest(self, name: str, manifest: Manifest, method: str) -> None:
        response = self.send(
            method, f"/v2/{name}/manifests/{manifest.digest}", headers={"Accept": OCI_MANIFEST}
        )
        self.expect(response, self.model.get_manifest(name, manifest.digest))

    @rule(name=repositories, n=PAGE_SIZES, last=st.none() | TAG_NAMES)
    def list_tags(self, name: str, n: int | None, last: str | None) -> None:
        response = self.send("GET", f"/v2/{name}/tags/list", params=_page_params(n, last))
        self.expect(response, self.model.tags_list(name, n, last))

    @rule(name=repositories)
    def list_tags_of_parent(self, name: str) -> None:
        """A path above a repository names no repository unless it was tagged itself."""
        parent = name.rpartition("/")[0]
        if parent:
            response = self.send("GET", f"/v2/{parent}/tags/list")
            self.expect(response, self.model.tags_list(parent, None, None))

    @rule(n=PAGE_SIZES, last=st.none() | NAMES)
    def list_catalog(self, n: int | None, last: str | None) -> None:
        response = self.send("GET", "/v2/_catalog", params=_page_params(n, last))
        self.expect(response, self.model.catalog(n, last))


def _manifest(config: Blob, layers: t.Sequence[Blob], salt: int) -> Manifest:
    needs = (config.digest, *(layer.digest for layer in layers))
    return Manifest(image_manifest(config.digest, needs[1:], salt), needs)


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}{urlencode({'digest': digest})}"


def _page_params(n: int | None, last: str | None) -> dict[str, str]:
    params = {}
    if n is not None:
        params["n"] = str(n)
    if last is not None:
        params["last"] = last
    return params


def _json(response: requests.Response) -> t.Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return f"<not JSON: {response.content[:200]!r}>"


def _error_code(response: requests.Response) -> str | None:
    document = _json(response)
    try:
        return str(document["errors"][0]["code"])
    except (KeyError, IndexError, TypeError):
        return None


def _detail_digests(response: requests.Response) -> frozenset[str] | None:
    try:
        detail = _json(response)["errors"][0]["detail"]
        return frozenset(str(entry["digest"]) for entry in detail)
    except (KeyError, IndexError, TypeError):
        return None


#: Hypothesis leaves this function unannotated; strict mypy accepts calls through a typed name.
run_machine: t.Callable[..., None] = run_state_machine_as_test


@pytest.mark.parametrize("storage", ["inmemory", "filesystem"])
def test_the_api_matches_a_model_registry(pax_registry_factory: RegistryFactory, storage: str) -> None:
    run_machine(lambda: RegistryMachine(pax_registry_factory, storage), settings=SETTINGS)
