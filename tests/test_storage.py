"""The storage layer below the API: the on-disk layout, the descriptor cache, uploads that one request
at a time writes, upload purging with what a crash leaves behind, and the filesystem driver's fsyncs."""

from __future__ import annotations

import datetime
import os
import pathlib
import threading
import time
import typing as t

import pytest

from emulator.drivers.base import FileInfo
from emulator.drivers.base import StorageDriver
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from emulator.errors import PROBLEMS
from emulator.errors import error_for
from emulator.reference import Digest
from emulator.storage import errors as problems
from emulator.storage import paths
from emulator.storage.blobs import BlobStore
from emulator.storage.cache import BlobDescriptorCache
from emulator.storage.cache import Descriptor
from emulator.storage.cache import SizedLRU
from emulator.storage.errors import BlobUploadUnknown
from emulator.storage.errors import RangeInvalid
from emulator.storage.manifests import StoredManifest
from emulator.storage.tags import TagStore
from emulator.storage.uploads import UploadStore

HEX = "ab" + "0" * 62
DIGEST = Digest("sha256", HEX)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (paths.blob_data(DIGEST), f"/docker/registry/v2/blobs/sha256/ab/{HEX}/data"),
        (
            paths.layer_link("team/app", DIGEST),
            f"/docker/registry/v2/repositories/team/app/_layers/sha256/{HEX}/link",
        ),
        (
            paths.manifest_revision_link("team/app", DIGEST),
            f"/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{HEX}/link",
        ),
        (
            paths.tag_current_link("app", "v1"),
            "/docker/registry/v2/repositories/app/_manifests/tags/v1/current/link",
        ),
        (
            paths.tag_index_link("app", "v1", DIGEST),
            f"/docker/registry/v2/repositories/app/_manifests/tags/v1/index/sha256/{HEX}/link",
        ),
        (paths.upload_data("app", "u-1"), "/docker/registry/v2/repositories/app/_uploads/u-1/data"),
        (
            paths.upload_started_at("app", "u-1"),
            "/docker/registry/v2/repositories/app/_uploads/u-1/startedat",
        ),
    ],
)
def test_paths_are_distributions_layout(path: str, expected: str) -> None:
    assert path == expected


def test_descriptor_cache_is_a_bounded_lru() -> None:
    cache = BlobDescriptorCache(size=2)
    first, second, third = (Digest("sha256", f"{n:064x}") for n in range(3))
    cache.set(Descriptor(first, 1))
    cache.set(Descriptor(second, 2))
    assert cache.get(first) is not None  # now the most recently used
    cache.set(Descriptor(third, 3))
    assert len(cache) == 2
    assert cache.get(second) is None
    assert cache.get(first) == Descriptor(first, 1)
    assert cache.get(third) == Descriptor(third, 3)


def test_descriptor_cache_keeps_repositories_apart() -> None:
    cache = BlobDescriptorCache()
    cache.set(Descriptor(DIGEST, 5), "team/app")
    assert cache.get(DIGEST, "team/app") == Descriptor(DIGEST, 5)
    assert cache.get(DIGEST, "other") is None
    assert cache.get(DIGEST) is None
    cache.clear(DIGEST, "team/app")
    assert cache.get(DIGEST, "team/app") is None


# -- uploads: one writer at a time, and nobody waits for it ----------------------------------------------


@pytest.fixture(params=["inmemory", "filesystem"])
def driver(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> StorageDriver:
    if request.param == "inmemory":
        return InMemoryDriver()
    return FileSystemDriver(str(tmp_path / "root"))


@pytest.fixture
def uploads(driver: StorageDriver) -> UploadStore:
    return UploadStore(driver, BlobStore(driver, BlobDescriptorCache()))


class StalledBody:
    """A request body that yields ``first`` and then waits, as a client that stops sending does.

    ``release(fail=True)`` ends it the way a dropped connection ends a body: with an exception.
    """

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.started = threading.Event()
        self._go = threading.Event()
        self._fail = False

    def __iter__(self) -> t.Iterator[bytes]:
        yield self.first
        self.started.set()
        self._go.wait(10)
        if self._fail:
            raise ConnectionResetError("client went away")

    def release(self, *, fail: bool) -> None:
        self._fail = fail
        self._go.set()


def write_in_thread(action: t.Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as e:  # handed to the test, which says what it expects
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_a_second_writer_is_refused_at_once_with_the_committed_range(uploads: UploadStore) -> None:
    upload = uploads.start("team/app").id
    uploads.append("team/app", upload, [b"0123456789"])
    stalled = StalledBody(b"partial")
    thread, errors = write_in_thread(lambda: uploads.append("team/app", upload, stalled, start=10))
    assert stalled.started.wait(10)
    began = time.monotonic()
    for attempt in (
        lambda: uploads.append("team/app", upload, [b"abc"], start=10),
        lambda: uploads.finish("team/app", upload, Digest.of(b"0123456789"), []),
    ):
        with pytest.raises(RangeInvalid) as refused:
            attempt()
        assert refused.value.committed == 10  # where the client can resume
        error = error_for(refused.value)
        assert (error.code, error.error_code) == (416, "RANGE_INVALID")
        assert ("Range", "0-9") in error.get_headers()
        assert "being written by another request" in error.get_body()
    assert time.monotonic() - began < 1  # refused, not queued behind the stalled writer
    stalled.release(fail=True)
    thread.join(10)
    assert [type(e) for e in errors] == [ConnectionResetError]
    # The refused PUT cancelled nothing, and nothing of the dropped chunk was kept.
    assert uploads.status("team/app", upload).size == 10
    uploads.append("team/app", upload, [b"abc"], start=10)
    descriptor = uploads.finish("team/app", upload, Digest.of(b"0123456789abc"), [])
    assert descriptor.size == 13


def test_the_refused_range_is_what_was_committed_also_after_a_restart(driver: StorageDriver) -> None:
    # A new store knows nothing of the upload (another process started it): the first writer reads its
    # size, and a second writer, or a status request, is told that size, not what the first has appended
    # in place since (the filesystem driver appends to the data file itself).
    first = UploadStore(driver, BlobStore(driver, BlobDescriptorCache()))
    upload = first.start("app").id
    first.append("app", upload, [b"x" * 100])
    store = UploadStore(driver, BlobStore(driver, BlobDescriptorCache()))
    partial = b"y" * (256 * 1024)  # more than the file's buffer, so that it reaches the disk
    stalled = StalledBody(partial)
    thread, _ = write_in_thread(lambda: store.append("app", upload, stalled))
    assert stalled.started.wait(10)
    with pytest.raises(RangeInvalid) as refused:
        store.append("app", upload, [b"z"])
    assert refused.value.committed == 100
    assert ("Range", "0-99") in error_for(refused.value).get_headers()
    assert store.status("app", upload).size == 100
    stalled.release(fail=False)
    thread.join(10)
    assert store.status("app", upload).size == 100 + len(partial)
    digest = Digest.of(b"x" * 100 + partial)
    assert store.finish("app", upload, digest, []).digest == digest


def test_a_writer_that_finishes_lets_the_next_one_in(uploads: UploadStore) -> None:
    upload = uploads.start("app").id
    stalled = StalledBody(b"abc")
    thread, errors = write_in_thread(lambda: uploads.append("app", upload, stalled))
    assert stalled.started.wait(10)
    stalled.release(fail=False)
    thread.join(10)
    assert errors == []
    assert uploads.append("app", upload, [b"def"], start=3).size == 6


def test_writes_to_unknown_uploads_leave_nothing_behind(uploads: UploadStore) -> None:
    for number in range(3):
        with pytest.raises(BlobUploadUnknown):
            uploads.append("app", f"no-such-upload-{number}", [b"data"])
        with pytest.raises(BlobUploadUnknown):
            uploads.finish("app", f"no-such-upload-{number}", Digest.of(b"data"), [])
    assert uploads._states == {}  # a client cannot grow this process's memory with made-up ids


# -- purging: old uploads, uploads killed while starting, orphan temporary files ---------------------------


def old(path: pathlib.Path, seconds: float = 3600) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_purge_removes_orphan_temporary_files_older_than_the_cutoff(tmp_path: pathlib.Path) -> None:
    driver = FileSystemDriver(str(tmp_path))
    store = UploadStore(driver, BlobStore(driver, BlobDescriptorCache()))
    driver.put_content(paths.tag_current_link("app", "v1"), b"sha256:" + b"a" * 64)
    tag_dir = tmp_path / paths.tag_current_link("app", "v1").lstrip("/").rsplit("/", 1)[0]
    blob_dir = tmp_path / paths.blob_dir(DIGEST).lstrip("/")
    blob_dir.mkdir(parents=True)
    stale = [tag_dir / ".tmp-killed-mid-write", blob_dir / ".tmp-killed-mid-put"]
    fresh = tag_dir / ".tmp-being-written"
    for path in (*stale, fresh):
        path.write_bytes(b"half")
    for path in stale:
        old(path)
    assert driver.list(paths.tag_current_link("app", "v1").rsplit("/", 1)[0]) == [
        paths.tag_current_link("app", "v1")
    ]
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    assert store.purge(cutoff, dry_run=True) == []
    assert all(path.exists() for path in stale)  # dry run
    store.purge(cutoff)
    assert [path.exists() for path in stale] == [False, False]
    assert fresh.exists()
    assert driver.get_content(paths.tag_current_link("app", "v1")) == b"sha256:" + b"a" * 64


def test_purge_removes_uploads_killed_before_startedat_was_written(tmp_path: pathlib.Path) -> None:
    driver = FileSystemDriver(str(tmp_path))
    store = UploadStore(driver, BlobStore(driver, BlobDescriptorCache()))
    live = store.start("app").id
    killed = tmp_path / paths.upload("app", "killed-in-start").lstrip("/")
    killed.mkdir(parents=True)
    (killed / ".tmp-startedat").write_bytes(b"2024-")
    old(killed / ".tmp-startedat")
    old(killed)
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    assert store.purge(cutoff) == [paths.upload("app", "killed-in-start")]
    assert not killed.exists()
    assert store.status("app", live).size == 0


def test_purge_spares_an_upload_this_process_is_writing(uploads: UploadStore) -> None:
    upload = uploads.start("app").id
    stalled = StalledBody(b"abc")
    thread, _ = write_in_thread(lambda: uploads.append("app", upload, stalled))
    assert stalled.started.wait(10)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    assert uploads.purge(future) == []
    stalled.release(fail=False)
    thread.join(10)
    assert uploads.purge(future) == [paths.upload("app", upload)]
    with pytest.raises(BlobUploadUnknown):
        uploads.status("app", upload)


# -- the filesystem driver syncs before it commits -----------------------------------------------------------


def test_filesystem_writes_are_synced_before_they_become_visible(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FileSystemDriver(str(tmp_path))
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(source: str, dest: str) -> None:
        events.append(("replace", os.path.basename(source)))
        real_replace(source, dest)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    driver.put_content("/a/link", b"sha256:" + b"b" * 64)
    temp = events[0][1]
    assert temp.startswith(".tmp-")
    assert events == [("fsync", temp), ("replace", temp)]
    events.clear()
    with driver.writer("/a/data", append=True) as first:  # a new file: written aside, then renamed
        first.write(b"one")
        first.commit()
    with driver.writer("/a/data", append=True) as more:  # appended in place
        more.write(b"two")
        more.commit()
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert events[-1] == ("fsync", "data")
    assert driver.get_content("/a/data") == b"onetwo"


# -- driver capabilities and storage problems -----------------------------------------------------------


class CountingReads(FileSystemDriver):
    """A filesystem driver under another name, counting reads: what the tag store does depends on
    what the driver declares, not on what it is called."""

    name = "counting"

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads = 0

    def get_content(self, path: str) -> bytes:
        self.reads += 1
        return super().get_content(path)


class CountingReadsOfRemoteFiles(CountingReads):
    local_files = False


@pytest.mark.parametrize(("driver_class", "reads"), [(CountingReads, 1), (CountingReadsOfRemoteFiles, 3)])
def test_the_tag_store_remembers_links_only_on_drivers_with_local_files(
    tmp_path: pathlib.Path, driver_class: type[CountingReads], reads: int
) -> None:
    driver = driver_class(str(tmp_path))
    store = TagStore(driver)
    store.tag("app", "v1", DIGEST)
    old(tmp_path / paths.tag_current_link("app", "v1").lstrip("/"))
    assert [store.resolve("app", "v1") for _ in range(3)] == [DIGEST] * 3
    assert driver.reads == reads


def test_every_storage_problem_reaches_the_client_as_an_oci_error() -> None:
    declared = {
        value
        for value in vars(problems).values()
        if isinstance(value, type) and issubclass(value, problems.Problem) and value is not problems.Problem
    }
    assert declared == set(PROBLEMS)
    for problem_class in declared:
        problem = (
            problems.RangeInvalid({"size": 0}, committed=0)
            if problem_class is problems.RangeInvalid
            else problem_class({"size": 0})
        )
        error = error_for(problem)
        assert type(error) is PROBLEMS[problem_class]
        assert (error.detail, error.message) == ({"size": 0}, PROBLEMS[problem_class].message)
    precise = error_for(problems.RangeInvalid(None, committed=5, message="chunk starts at 9"))
    assert precise.message == "chunk starts at 9"
    assert ("Range", "0-4") in precise.get_headers()


# -- tag lists and manifests at scale: one listing, caches kept under writes, sized in bytes --------------


class CountingCalls(FileSystemDriver):
    """A filesystem driver counting the calls a tags list or a manifest GET makes."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.calls: dict[str, int] = {"stat": 0, "list": 0, "get_content": 0}

    def stat(self, path: str) -> FileInfo:
        self.calls["stat"] += 1
        return super().stat(path)

    def names(self, path: str) -> list[str]:
        # What both list and names come to: a tags list asks for names, other listings for paths.
        self.calls["list"] += 1
        return super().names(path)

    def get_content(self, path: str) -> bytes:
        self.calls["get_content"] += 1
        return super().get_content(path)

    def counted(self) -> dict[str, int]:
        counted, self.calls = self.calls, dict.fromkeys(self.calls, 0)
        return counted


def tags_dir(root: pathlib.Path, name: str) -> pathlib.Path:
    return root / paths.tags(name).lstrip("/")


def test_a_tags_list_after_a_push_is_one_listing(tmp_path: pathlib.Path) -> None:
    """The first list looks at every tag's link; after this process pushes a tag, which wrote its link, a
    list is one ``stat`` of the directory and one listing."""
    driver = CountingCalls(str(tmp_path))
    store = TagStore(driver)
    for number in range(50):
        store.tag("app", f"v{number:02d}", DIGEST)
    driver.counted()
    assert store.list("app") == [f"v{number:02d}" for number in range(50)]
    assert driver.counted() == {"stat": 1 + 50, "list": 1, "get_content": 0}  # the first: every tag's link
    for number in range(50, 53):
        store.tag("app", f"v{number:02d}", DIGEST)
        driver.counted()
        assert store.list("app") == [f"v{number:02d}" for number in range(number + 1)]
        assert driver.counted() == {"stat": 1, "list": 1, "get_content": 0}


def test_a_tag_another_process_pushed_is_looked_at_once(tmp_path: pathlib.Path) -> None:
    driver = CountingCalls(str(tmp_path))
    ours, theirs = TagStore(driver), TagStore(FileSystemDriver(str(tmp_path)))
    ours.tag("app", "v1", DIGEST)
    assert ours.list("app") == ["v1"]
    theirs.tag("app", "v2", DIGEST)
    driver.counted()
    assert ours.list("app") == ["v1", "v2"]
    assert driver.counted() == {"stat": 1 + 1, "list": 1, "get_content": 0}
    assert ours.list("app") == ["v1", "v2"]
    assert driver.counted()["stat"] == 1  # then known: no second look


def test_a_tag_directory_without_its_link_is_not_listed(tmp_path: pathlib.Path) -> None:
    """What a process killed while making a tag's directory leaves, or a tag being written: listed once
    its link is there, so that every tag listed resolves."""
    store = TagStore(FileSystemDriver(str(tmp_path)))
    store.tag("app", "v1", DIGEST)
    half = tmp_path / paths.tag_current_link("app", "v2").lstrip("/")
    half.parent.mkdir(parents=True)
    (half.parent / ".tmp-killed").write_bytes(b"sha256:01")
    old(tags_dir(tmp_path, "app"))  # a still directory: what is listed could be remembered
    assert store.list("app") == ["v1"]
    assert store.list("app") == ["v1"]
    half.write_bytes(str(DIGEST).encode())
    assert store.list("app") == ["v1", "v2"]
    assert store.resolve("app", "v2") == DIGEST


def test_a_tags_list_once_the_directory_is_still_is_one_stat(tmp_path: pathlib.Path) -> None:
    driver = CountingCalls(str(tmp_path))
    store = TagStore(driver)
    store.tag("app", "v1", DIGEST)
    old(tags_dir(tmp_path, "app"))
    assert store.list("app") == ["v1"]
    driver.counted()
    assert [store.list("app") for _ in range(3)] == [["v1"]] * 3
    assert driver.counted() == {"stat": 3, "list": 0, "get_content": 0}


def test_this_process_sees_its_own_tags_at_once_while_tagging_continuously(tmp_path: pathlib.Path) -> None:
    store = TagStore(FileSystemDriver(str(tmp_path)))
    expected = []
    for number in range(20):
        store.tag("app", f"v{number:02d}", DIGEST)
        expected.append(f"v{number:02d}")
        assert store.list("app") == expected
    for tag in ("v03", "v11"):
        store.untag("app", tag)
        expected.remove(tag)
        assert store.list("app") == expected


def test_retagging_keeps_the_list_remembered(tmp_path: pathlib.Path) -> None:
    driver = CountingCalls(str(tmp_path))
    store = TagStore(driver)
    store.tag("app", "v1", DIGEST)
    old(tags_dir(tmp_path, "app"))
    store.list("app")
    store.tag("app", "v1", Digest("sha256", "cd" + "0" * 62))  # the same tag: the list is unchanged
    driver.counted()
    assert store.list("app") == ["v1"]
    assert driver.counted()["list"] == 0
    assert store.resolve("app", "v1") == Digest("sha256", "cd" + "0" * 62)


def test_tags_written_by_another_process_are_seen_through_the_directory_time(tmp_path: pathlib.Path) -> None:
    ours, theirs = TagStore(FileSystemDriver(str(tmp_path))), TagStore(FileSystemDriver(str(tmp_path)))
    ours.tag("app", "v1", DIGEST)
    old(tags_dir(tmp_path, "app"))
    assert ours.list("app") == ["v1"]  # remembered: the directory is still
    theirs.tag("app", "v2", DIGEST)
    assert ours.list("app") == ["v1", "v2"]
    old(tags_dir(tmp_path, "app"))
    assert ours.list("app") == ["v1", "v2"]
    theirs.untag("app", "v1")
    assert ours.list("app") == ["v2"]


def test_a_listing_of_a_directory_changed_within_the_tick_is_not_trusted(tmp_path: pathlib.Path) -> None:
    """Another process's write in the same clock tick as the time a listing saw leaves that time: a
    listing is only remembered once its time is older than a tick."""
    ours, theirs = TagStore(FileSystemDriver(str(tmp_path))), TagStore(FileSystemDriver(str(tmp_path)))
    ours.tag("app", "v1", DIGEST)
    directory = tags_dir(tmp_path, "app")
    moment = time.time() - 0.001
    os.utime(directory, (moment, moment))
    assert ours.list("app") == ["v1"]
    theirs.tag("app", "v2", DIGEST)
    os.utime(directory, (moment, moment))  # the second write fell in the same tick
    assert ours.list("app") == ["v1", "v2"]


@pytest.mark.parametrize(
    ("moment", "listings"),
    [
        (lambda now: float(int(now) - 1), 2),  # whole seconds, under two seconds old: relisted
        (lambda now: float(int(now) - 3), 1),
        (lambda now: now - 1.5, 1),  # a fraction of a second: a fine clock, trusted after its tick
    ],
)
def test_whole_second_times_wait_for_a_coarse_filesystems_tick(
    tmp_path: pathlib.Path, moment: t.Callable[[float], float], listings: int
) -> None:
    """A time with no fraction of a second comes from a filesystem keeping whole seconds (ext3, FAT's
    two): it is trusted only once two seconds old."""
    driver = CountingCalls(str(tmp_path))
    store = TagStore(driver)
    store.tag("app", "v1", DIGEST)
    when = moment(time.time())
    os.utime(tags_dir(tmp_path, "app"), (when, when))
    driver.counted()
    assert [store.list("app"), store.list("app")] == [["v1"], ["v1"]]
    assert driver.counted()["list"] == listings


def test_a_manifest_get_reads_its_content_once_then_two_stats(tmp_path: pathlib.Path) -> None:
    from emulator.storage.cache import NoCache
    from emulator.storage.registry import Registry
    from pax_registry_fixtures.seeding import OCI_MANIFEST
    from pax_registry_fixtures.seeding import image_manifest

    writer = Registry(FileSystemDriver(str(tmp_path)), NoCache())
    config, layer = b"{}", b"layer"
    for blob in (config, layer):
        writer.blobs.link("app", writer.blobs.put(blob))
    pushed = {}
    for number in range(30):
        content = image_manifest(config, [layer], annotations={"n": str(number)})
        pushed[f"v{number}"] = (writer.put_manifest("app", f"v{number}", content, OCI_MANIFEST)[0], content)
    driver = CountingCalls(str(tmp_path))
    reader = Registry(driver, NoCache())  # a fresh process: nothing remembered
    for tag in pushed:
        old(tmp_path / paths.tag_current_link("app", tag).lstrip("/"))
    for _ in range(2):
        for tag, (digest, content) in pushed.items():
            assert reader.get_manifest("app", tag) == StoredManifest(digest, content, OCI_MANIFEST)
    # Link and content read once each, then a stat of the tag's link and of the revision per GET.
    assert driver.counted() == {"stat": 4 * len(pushed), "list": 0, "get_content": 2 * len(pushed)}


def test_sized_lru_counts_bytes_and_drops_the_least_recently_used() -> None:
    cache: SizedLRU[str, bytes] = SizedLRU(800)
    cache.put("a", b"a" * 100, 100)
    cache.put("b", b"b" * 100, 100)
    cache.put("huge", b"h" * 101, 101)  # above an eighth of the budget: never kept
    assert (cache.get("huge"), cache.size) == (None, 200)
    for number in range(7):
        assert cache.get("a") is not None  # keeps "a" the most recently used
        cache.put(f"n{number}", b"n" * 100, 100)
    assert cache.size == 800
    assert cache.get("b") is None
    assert cache.get("a") == b"a" * 100
    assert len(cache) == 8
    cache.clear()
    assert (len(cache), cache.size) == (0, 0)
