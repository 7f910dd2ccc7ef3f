"""Suite item b: hostile identifiers in every route, over a raw socket, on every storage driver.

Every route of the v2 API and of its ``/v1`` mirror, every place a request carries an identifier
(repository name, manifest reference, digest, upload id, and the ``last``, ``digest``, ``mount``,
``from`` and ``_state`` query values), and values meant to climb out of a directory or break a line:
``..`` and ``.`` raw, percent-encoded and double-encoded, ``%2f`` inside a segment, NUL, backslash,
CR/LF, an invalid UTF-8 byte, overlong values and an empty segment. Each request goes over a raw
HTTP/1.1 socket, so no client library normalises the path, with every method the route takes.

Each answer must carry the status and error code the spec names (or distribution's plain 404 for a
path that is no route, or the spec's success where a value is only a hint, as ``last`` and ``mount``
are), and storage must be byte-identical after every request: on filesystem every file's sha256, on
inmemory every file the driver holds, on S3 every key with its ETag and size. A ``victim`` repository
with a blob, a manifest, a tag and an open upload is there to be damaged. The DELETE cases run again
on registries with deletes disabled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator.drivers.inmemory import InMemoryDriver
from emulator.reference import is_valid_upload_id
from emulator.storage.cache import NoCache
from emulator.storage.registry import Registry
from tests.rawhttp import ConnectionClosed
from tests.rawhttp import MalformedResponse
from tests.rawhttp import RawConnection
from tests.rawhttp import RawResponse

if t.TYPE_CHECKING:
    from pax_registry_fixtures.factory import RegistryFactory
    from pax_registry_fixtures.server import RegistryServer

READ = ("GET", "HEAD")
MANIFEST_METHODS = ("GET", "HEAD", "PUT", "DELETE")
BLOB_METHODS = ("GET", "HEAD", "DELETE")
UPLOAD_METHODS = ("GET", "HEAD", "PATCH", "PUT", "DELETE")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PLAIN_404 = b"404 page not found\n"
QUIET = {"log": {"level": "error", "accesslog": {"disabled": True}}}


@dataclass(frozen=True)
class Hostile:
    """A value as it is written into the request, and as the registry reads it once decoded."""

    label: str
    raw: str
    decoded: str


HOSTILE = (
    Hostile("dotdot", "..", ".."),
    Hostile("dot", ".", "."),
    Hostile("encoded dotdot", "%2e%2e", ".."),
    Hostile("mixed encoded dotdot", "%2E.", ".."),
    Hostile("double-encoded dotdot", "%252e%252e", "%2e%2e"),
    Hostile("encoded slash", "..%2f..", "../.."),
    Hostile("double-encoded slash", "..%252f..", "..%2f.."),
    Hostile("encoded NUL", "a%00b", "a\x00b"),
    Hostile("encoded backslash", "..%5c..", "..\\.."),
    Hostile("backslash", "..\\..", "..\\.."),
    Hostile("encoded CR LF", "a%0d%0ab", "a\r\nb"),
    Hostile("invalid UTF-8", "%ff", "\ufffd"),
    Hostile("overlong", "a" * 300, "a" * 300),
    Hostile("overlong digest", "sha256:" + "a" * 300, "sha256:" + "a" * 300),
    Hostile("empty", "", ""),
)


@dataclass(frozen=True)
class Expected:
    """An answer: its status, and its error code (``None``: distribution's plain 404 for a path that is
    no route, or, with ``kind``, a success whose body is checked instead)."""

    status: int
    code: str | None = None
    #: ``"catalog"``, ``"tags"``, ``"base"`` (a JSON body) or ``"new upload"`` (202 and an upload id).
    kind: str | None = None


NO_ROUTE = Expected(404)


def expect_name(value: Hostile, method: str) -> Expected:
    # The name's converter takes anything but a leading slash, so only an empty name is no route.
    return NO_ROUTE if value.decoded == "" else Expected(400, "NAME_INVALID")


def expect_name_component(value: Hostile, method: str) -> Expected:
    return Expected(400, "NAME_INVALID")


def expect_segment(code: Expected) -> t.Callable[[Hostile, str], Expected]:
    """For a value that is one path segment: with a slash in it (or none at all) the path is no route."""

    def expect(value: Hostile, method: str) -> Expected:
        return NO_ROUTE if value.decoded == "" or "/" in value.decoded else code

    return expect


def expect_reference(value: Hostile, method: str) -> Expected:
    if value.decoded == "" or "/" in value.decoded:
        return NO_ROUTE
    if ":" in value.decoded:
        return Expected(400, "DIGEST_INVALID")
    return Expected(400, "TAG_INVALID") if method == "PUT" else Expected(404, "MANIFEST_UNKNOWN")


def expect_upload_id(value: Hostile, method: str) -> Expected:
    if value.decoded == "":
        # ".../blobs/uploads/" is the route that starts uploads, which takes POST only.
        return Expected(405, "UNSUPPORTED")
    if "/" in value.decoded:
        return NO_ROUTE
    return Expected(404, "BLOB_UPLOAD_UNKNOWN")


def expect_base(value: Hostile, method: str) -> Expected:
    return Expected(200, kind="base") if value.decoded == "" else NO_ROUTE


def always(expected: Expected) -> t.Callable[[Hostile, str], Expected]:
    return lambda value, method: expected


@dataclass(frozen=True)
class Slot:
    """One identifier position of one route: ``template`` holds ``{h}`` where the value goes."""

    route: str
    position: str
    methods: tuple[str, ...]
    template: str
    expect: t.Callable[[Hostile, str], Expected]

    @property
    def id(self) -> str:
        return f"{self.route}: {self.position}"


def name_slots(route: str, methods: tuple[str, ...], rest: str) -> list[Slot]:
    return [
        Slot(route, "name", methods, "{api}/{h}/" + rest, expect_name),
        Slot(route, "name component", methods, "{api}/victim/{h}/" + rest, expect_name_component),
    ]


SLOTS = (
    Slot("base", "path below the root", READ, "{api}/{h}", expect_base),
    Slot("catalog", "last", READ, "{api}/_catalog?last={h}", always(Expected(200, kind="catalog"))),
    *name_slots("tags list", READ, "tags/list"),
    # ``last`` only positions a page in a sorted list and never reaches storage: distribution answers 200.
    Slot("tags list", "last", READ, "{api}/victim/tags/list?last={h}", always(Expected(200, kind="tags"))),
    *name_slots("manifests", MANIFEST_METHODS, "manifests/{tag}"),
    Slot("manifests", "reference", MANIFEST_METHODS, "{api}/victim/manifests/{h}", expect_reference),
    *name_slots("blobs", BLOB_METHODS, "blobs/{layer}"),
    Slot(
        "blobs",
        "digest",
        BLOB_METHODS,
        "{api}/victim/blobs/{h}",
        expect_segment(Expected(400, "DIGEST_INVALID")),
    ),
    *name_slots("uploads start", ("POST",), "blobs/uploads/"),
    Slot(
        "uploads start",
        "digest",
        ("POST",),
        "{api}/victim/blobs/uploads/?digest={h}",
        always(Expected(400, "DIGEST_INVALID")),
    ),
    # A mount that cannot be made opens an upload instead (the spec's 202, distribution's answer).
    Slot(
        "uploads start",
        "mount",
        ("POST",),
        "{api}/victim/blobs/uploads/?mount={h}&from=victim",
        always(Expected(202, kind="new upload")),
    ),
    Slot(
        "uploads start",
        "from",
        ("POST",),
        "{api}/victim/blobs/uploads/?mount={layer}&from={h}",
        always(Expected(202, kind="new upload")),
    ),
    *name_slots("upload", UPLOAD_METHODS, "blobs/uploads/{upload}"),
    Slot("upload", "upload id", UPLOAD_METHODS, "{api}/victim/blobs/uploads/{h}", expect_upload_id),
    Slot(
        "upload",
        "digest",
        ("PUT",),
        "{api}/victim/blobs/uploads/{upload}?digest={h}",
        always(Expected(400, "DIGEST_INVALID")),
    ),
    Slot(
        "upload",
        "_state",
        ("PATCH", "PUT"),
        "{api}/victim/blobs/uploads/{upload}?_state={h}",
        always(Expected(404, "BLOB_UPLOAD_INVALID")),
    ),
    *name_slots("referrers", READ, "referrers/{manifest}"),
    Slot(
        "referrers",
        "digest",
        READ,
        "{api}/victim/referrers/{h}",
        expect_segment(Expected(400, "DIGEST_INVALID")),
    ),
)


# -- the registries ----------------------------------------------------------------------------------


@dataclass
class Target:
    """A running registry with ``victim`` seeded, and a way to fingerprint its whole storage."""

    registry: RegistryServer
    storage: str
    layer: str
    manifest: str
    tag: str
    upload: str

    def fingerprint(self) -> dict[str, str]:
        """Every file (and directory) in storage with a hash of its content."""
        if self.storage == "filesystem":
            return _filesystem_tree(Path(t.cast(t.Any, self.registry.registry.driver).root))
        if self.storage == "s3":
            bucket = self.registry.s3
            assert bucket is not None
            tree = {}
            for page in bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.bucket):
                for item in page.get("Contents", ()):
                    tree[item["Key"]] = f"{item['ETag']} {item['Size']}"
            return tree
        driver = self.registry.registry.driver
        return {
            info.path: "dir" if info.is_dir else hashlib.sha256(driver.get_content(info.path)).hexdigest()
            for info in driver.walk("/")
        }


def _filesystem_tree(root: Path) -> dict[str, str]:
    tree = {}
    for directory, _, files in os.walk(root):
        tree[os.path.relpath(directory, root) + "/"] = "dir"
        for name in files:
            path = Path(directory, name)
            tree[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def _start(factory: RegistryFactory, storage: str, *, delete: bool) -> Target:
    if storage == "s3":
        # moto is a test dependency: without it the S3 cases fail rather than skip.
        import moto.server  # noqa: F401

    registry = factory(QUIET, storage=storage, delete=delete)
    image = registry.push_image("victim", "latest", layers=1, size=256)
    uploads = registry.registry.uploads
    upload = uploads.start("victim").id
    uploads.append("victim", upload, [b"partial upload"])
    return Target(registry, storage, image.layers[0], image.digest, "latest", upload)


@pytest.fixture(scope="module", params=["inmemory", "filesystem", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def targets(pax_registry_factory_module: RegistryFactory, storage: str) -> dict[bool, Target]:
    """Registries on ``storage``, by whether deletes are enabled."""
    return {delete: _start(pax_registry_factory_module, storage, delete=delete) for delete in (True, False)}


# -- the raw HTTP/1.1 client ---------------------------------------------------------------------------


def send(registry: RegistryServer, method: str, target: str, *headers: str) -> RawResponse:
    """One request on its own connection, the request-target sent byte for byte as given."""
    head = f"{method} {target} HTTP/1.1\r\nHost: {registry.host}\r\nConnection: close\r\n"
    head += "".join(f"{header}\r\n" for header in headers)
    if method in ("POST", "PUT", "PATCH"):
        head += "Content-Length: 0\r\n"
    with RawConnection(registry.port, timeout=10) as connection:
        connection.send((head + "\r\n").encode("ascii"))
        return connection.read_response(method)


# -- the table -------------------------------------------------------------------------------------------


def problems_with(answer: RawResponse, expected: Expected, method: str) -> list[str]:
    """What is wrong with ``answer``; nothing when it is what ``expected`` says."""
    problems = []
    if answer.status != expected.status:
        problems.append(f"status {answer.status}, expected {expected.status}")
    content_type = answer.header("Content-Type") or ""
    if expected.kind is None and expected.code is None:
        if not content_type.startswith("text/plain"):
            problems.append(f"Content-Type {content_type!r} for a path that is no route")
        if method != "HEAD" and answer.body != PLAIN_404:
            problems.append(f"body {answer.body[:200]!r}, expected distribution's plain 404")
    elif expected.code is not None:
        if not content_type.startswith("application/json"):
            problems.append(f"Content-Type {content_type!r} for an error")
        if method != "HEAD":
            problems.extend(_error_code_problems(answer.body, expected.code))
    elif expected.kind == "new upload":
        if not UUID_RE.fullmatch(answer.header("Docker-Upload-UUID") or ""):
            problems.append(f"no upload id: {answer.headers}")
    elif method != "HEAD":
        problems.extend(_page_problems(answer.body, expected.kind))
    return problems


def _error_code_problems(body: bytes, code: str) -> list[str]:
    try:
        errors = json.loads(body)["errors"]
        found = errors[0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return [f"no JSON error body: {body[:200]!r}"]
    return [] if found == code else [f"error code {found}, expected {code}"]


def _page_problems(body: bytes, kind: str | None) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return [f"no JSON body: {body[:200]!r}"]
    wanted = {"catalog": {"repositories"}, "tags": {"name", "tags"}, "base": set()}[kind or "base"]
    return [] if set(document) == wanted else [f"body {document!r} for a {kind}"]


def run_slot(target: Target, slot: Slot, methods: t.Collection[str]) -> list[str]:
    """Send every hostile value in ``slot`` with each of ``methods``; the failures, described."""
    registry = target.registry
    failures = []
    before = target.fingerprint()
    for api in ("/v2", "/v1"):
        for value in HOSTILE:
            request_target = slot.template.format(
                api=api,
                h=value.raw,
                tag=target.tag,
                layer=target.layer,
                manifest=target.manifest,
                upload=target.upload,
            )
            for method in slot.methods:
                if method not in methods:
                    continue
                expected = slot.expect(value, method)
                case = f"{method} {request_target[:120]} ({value.label})"
                try:
                    answer = send(registry, method, request_target)
                except (OSError, ConnectionClosed, MalformedResponse) as e:
                    failures.append(f"{case}: no answer: {type(e).__name__}: {e}")
                    continue
                problems = problems_with(answer, expected, method)
                if expected.kind == "new upload" and not problems:
                    problems.extend(_cancel_new_upload(target, api, answer, before))
                after = target.fingerprint()
                if after != before:
                    problems.append(f"storage changed: {_difference(before, after)}")
                    before = after
                failures.extend(f"{case}: {problem}" for problem in problems)
    return failures


def _cancel_new_upload(target: Target, api: str, answer: RawResponse, before: dict[str, str]) -> list[str]:
    """The upload a failed mount opened is all that changed; cancelling it restores storage."""
    upload = answer.header("Docker-Upload-UUID")
    added = target.fingerprint().keys() - before.keys()
    added = {path for path in added if f"/_uploads/{upload}" not in path}
    problems = [f"besides upload {upload}, storage changed: {sorted(added)}"] if added else []
    cancelled = send(target.registry, "DELETE", f"{api}/victim/blobs/uploads/{upload}")
    if cancelled.status != 204:
        problems.append(f"cancelling upload {upload} answered {cancelled.status}")
    return problems


def _difference(before: dict[str, str], after: dict[str, str]) -> str:
    removed = sorted(before.keys() - after.keys())
    added = sorted(after.keys() - before.keys())
    changed = sorted(path for path in before.keys() & after.keys() if before[path] != after[path])
    return f"removed {removed[:10]}, added {added[:10]}, changed {changed[:10]}"


@pytest.mark.parametrize("slot", SLOTS, ids=lambda slot: slot.id)
def test_hostile_identifiers_answer_the_spec_and_leave_storage_untouched(
    targets: dict[bool, Target], slot: Slot
) -> None:
    failures = run_slot(targets[True], slot, slot.methods)
    assert not failures, f"{len(failures)} case(s) failed:\n" + "\n".join(failures)


DELETE_SLOTS = [slot for slot in SLOTS if "DELETE" in slot.methods]


@pytest.mark.parametrize("slot", DELETE_SLOTS, ids=lambda slot: slot.id)
def test_hostile_deletes_remove_nothing_with_deletes_disabled(
    targets: dict[bool, Target], slot: Slot
) -> None:
    failures = run_slot(targets[False], slot, {"DELETE"})
    assert not failures, f"{len(failures)} case(s) failed:\n" + "\n".join(failures)


def test_the_seeded_victim_still_answers(targets: dict[bool, Target]) -> None:
    """The victim's blob, manifest, tag and open upload are there to be damaged: they answer (after the
    table, when the tests run in order)."""
    accept = "Accept: application/vnd.oci.image.manifest.v1+json"
    for target in targets.values():
        registry = target.registry
        assert send(registry, "HEAD", f"/v2/victim/blobs/{target.layer}").status == 200
        assert send(registry, "HEAD", f"/v2/victim/manifests/{target.tag}", accept).status == 200
        assert send(registry, "HEAD", f"/v2/victim/manifests/{target.manifest}", accept).status == 200
        assert send(registry, "GET", f"/v2/victim/blobs/uploads/{target.upload}").status == 204
        tags = json.loads(send(registry, "GET", "/v2/victim/tags/list").body)
        assert tags == {"name": "victim", "tags": ["latest"]}


# -- the grammar behind the table ------------------------------------------------------------------------


def test_upload_ids_are_exactly_the_ids_the_registry_gives_out() -> None:
    store = Registry(InMemoryDriver(), NoCache()).uploads
    given = [store.start("repo").id for _ in range(50)]
    assert all(is_valid_upload_id(upload_id) for upload_id in given)
    sample = str(uuid.uuid4())
    for other in (
        sample.upper(),
        uuid.UUID(sample).hex,
        f"{{{sample}}}",
        f"urn:uuid:{sample}",
        f"{sample}\n",
        f" {sample}",
        sample[:-1],
        sample + "0",
        sample.replace("-", "/", 1),
        "..",
        ".",
        "",
    ):
        assert not is_valid_upload_id(other), other
