"""Tags: names pointing at manifest digests, with the history distribution keeps in ``index/``.

A repository's tags are the directories of its tags directory, as distribution lists them: one listing.
A tag is written current link first, as distribution writes it; still, a directory exists for a moment
before its link (and stays so if the process is killed then), and such a tag would not resolve. So a
directory is looked into (one ``stat`` of its link) the first time this process lists it, and is left
out until its link is there: after this process pushed a tag (it wrote the link) a list costs one
listing, after another process did one listing and one ``stat``; the first list of a repository in a
process costs a ``stat`` per tag. On the filesystem the listing is of names (no path is made per tag).

On drivers with local files (:attr:`~emulator.drivers.base.StorageDriver.local_files`: the filesystem),
what was read is remembered while the file, or the tags directory, keeps its size and modification time:
one ``stat`` instead of reading a link on every manifest GET, and one ``stat`` instead of a listing on
every page of a tags list. This process's own tag and untag drop the remembered list at once. Another
process (docker-registry, a second emulator) may write the same root; its writes are seen through the
times: a tag comes and goes with its directory, which changes the tags directory's time.

A time is trusted only once it is older than the filesystem's clock tick (git's "racy" entries): a
write in the same tick as the one that set it could leave the same time. On Linux the tick is at most
10 ms (timestamps are taken from the coarse clock, one jiffy behind the real one), hence
:data:`RACY_SECONDS`; a time with no fraction of a second comes from a filesystem keeping whole seconds
(ext3, FAT's two seconds), which waits :data:`COARSE_RACY_SECONDS`. A repository tagged many times a
second is listed afresh each time, at the cost of one directory listing, which is what distribution
pays on every request. A time ahead of this machine's clock is never trusted. Processes sharing a root
over a network filesystem need clocks that agree, and no attribute caching (``noac``), for any of this.

Remote drivers (S3) remember no list: a prefix has no modification time to notice another process's
writes by, so every list is one object listing, as in distribution; only which tags were seen complete
is remembered, so that a list costs no request per tag but for new ones.
"""

from __future__ import annotations

import builtins
import threading
import time
import typing as t

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..reference import Digest
from ..reference import InvalidDigest
from . import paths
from .errors import ManifestUnknown
from .errors import NameUnknown

#: How old a modification time with a fraction of a second must be before it is trusted.
RACY_SECONDS = 0.05
#: How old a whole-second modification time must be before it is trusted.
COARSE_RACY_SECONDS = 2.0
#: How many tag links and tag lists are remembered (all are forgotten when either is full).
MAX_ENTRIES = 65536


class _Seen(t.NamedTuple):
    """What a file or directory looked like (size and modification time) when its content was read.

    A tuple: made and compared on every manifest GET by tag, where a frozen dataclass cost 2 us more."""

    size: int
    modtime: float

    def settled(self, checked: float) -> bool:
        """Whether any write after ``checked`` (taken before the stat that saw this) changes the time."""
        racy = RACY_SECONDS if self.modtime % 1 else COARSE_RACY_SECONDS
        return checked - self.modtime > racy


@t.runtime_checkable
class _NamesDriver(t.Protocol):
    """A driver that lists a directory's names without the directory's path before each
    (:meth:`~emulator.drivers.filesystem.FileSystemDriver.names`)."""

    def names(self, path: str) -> builtins.list[str]: ...


class _Listing:
    """What this process knows of one repository's tags directory."""

    __slots__ = ("answer", "complete")

    def __init__(self) -> None:
        #: Tags whose current link was seen: the link stays until the tag goes (see :meth:`TagStore.list`).
        self.complete: set[str] = set()
        #: The last list and the settled time of the directory it was read at; ``None`` after a change.
        self.answer: tuple[_Seen, tuple[str, ...]] | None = None


class TagStore:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._remember = driver.local_files
        self._links: dict[tuple[str, str], tuple[_Seen, Digest]] = {}
        self._lists: dict[str, _Listing] = {}
        self._lock = threading.Lock()
        self._names = driver.names if isinstance(driver, _NamesDriver) else self._listed_tags

    def _listed_tags(self, directory: str) -> builtins.list[str]:
        return [paths.tag_of(entry) for entry in self.driver.list(directory)]

    def resolve(self, name: str, tag: str) -> Digest:
        path = paths.tag_current_link(name, tag)
        seen = None
        checked = 0.0
        if self._remember:
            checked = time.time()
            try:
                info = self.driver.stat(path)
            except PathNotFound:
                raise ManifestUnknown({"tag": tag}) from None
            seen = _Seen(info.size, info.modtime)
            known = self._links.get((name, tag))
            if known is not None and known[0] == seen:
                return known[1]
        try:
            digest = Digest.parse(self.driver.get_content(path).decode())
        except (PathNotFound, InvalidDigest, UnicodeDecodeError):
            raise ManifestUnknown({"tag": tag}) from None
        if seen is not None and seen.settled(checked):
            # The content read is at least as new as ``seen``: if it is newer, the next stat differs.
            with self._lock:
                if len(self._links) >= MAX_ENTRIES:
                    self._links.clear()
                self._links[(name, tag)] = (seen, digest)
        return digest

    def tag(self, name: str, tag: str, digest: Digest) -> None:
        link = str(digest).encode()
        # Current first, as distribution: a tag whose directory exists resolves, but for the moment
        # between the directory's making and the link's rename (see :meth:`list`).
        self.driver.put_content(paths.tag_current_link(name, tag), link)
        self.driver.put_content(paths.tag_index_link(name, tag, digest), link)
        known = self._lists.get(name)
        if known is not None and tag not in known.complete:
            with self._lock:
                known.answer = None
                # Its current link was just written: the next list need not look for it.
                known.complete.add(tag)

    def untag(self, name: str, tag: str) -> None:
        try:
            self.driver.stat(paths.tag_current_link(name, tag))
        except PathNotFound:
            raise ManifestUnknown({"tag": tag}) from None
        try:
            self.driver.delete(paths.tag(name, tag))
        finally:
            known = self._lists.get(name)
            if known is not None:
                with self._lock:
                    known.answer = None
                    known.complete.discard(tag)

    def list(self, name: str) -> list[str]:
        """Every tag of the repository, sorted.

        :class:`NameUnknown` unless the repository was ever tagged, as distribution answers: its tags
        directory is what makes a repository known here, not blobs, uploads or manifests pushed by
        digest, and a parent (``a`` of ``a/b``) has none. Once every tag is gone the list is empty
        where empty directories stay (filesystem, inmemory); on S3 the repository is unknown again.

        A tag directory without its current link (one being made or removed, or what a process killed
        meanwhile left) is left out, so that every tag listed resolves. Only directories not seen
        complete before are looked into: none after this process's push, one after another process's,
        every tag's once per process.
        """
        known = self._lists.get(name)
        seen = None
        checked = 0.0
        if self._remember:
            checked = time.time()
            try:
                info = self.driver.stat(paths.tags(name))
            except PathNotFound:
                info = None
            if info is not None:
                seen = _Seen(info.size, info.modtime)
                answer = known.answer if known is not None else None
                if answer is not None and answer[0] == seen:
                    return list(answer[1])
        try:
            tags = self._names(paths.tags(name))
        except PathNotFound:
            raise NameUnknown({"name": name}) from None
        if known is None:
            with self._lock:
                if len(self._lists) >= MAX_ENTRIES:
                    self._lists.clear()
                known = self._lists.setdefault(name, _Listing())
        # After this process's own push every tag is complete: one pass in C, no list of the unseen.
        unseen = [] if known.complete.issuperset(tags) else [tag for tag in tags if tag not in known.complete]
        current = {tag for tag in unseen if self.driver.exists(paths.tag_current_link(name, tag))}
        pending = len(current) < len(unseen)
        if pending:
            tags = [tag for tag in tags if tag in current or tag in known.complete]
        with self._lock:
            known.complete.update(current)
            if len(known.complete) > len(tags):  # tags that other processes removed
                known.complete.intersection_update(tags)
            # A link arriving in a pending tag's directory leaves the tags directory's time as it was:
            # a list with one pending is read again next time.
            if seen is not None and seen.settled(checked) and not pending:
                known.answer = (seen, tuple(tags))
        return tags

    def tags_for(self, name: str, digest: Digest) -> builtins.list[str]:
        found = []
        for tag in self.list(name):
            try:
                if self.resolve(name, tag) == digest:
                    found.append(tag)
            except ManifestUnknown:
                continue
        return found
