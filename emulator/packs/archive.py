"""Reading a pack, from its directory or from its ``.tar.gz`` archive, without extracting anything.

An archive is read as one stream (the way a blob comes out of storage): gunzipped and untarred on the
fly, with the compressed and the uncompressed bytes counted as they pass, so a zip bomb is stopped at
:attr:`Limits.uncompressed` however small it is on the wire. Only ``pack.json`` and ``values.yaml``
are kept, each up to :attr:`Limits.small_file`, and the first bytes of ``logo.png``; every other member
is read past and remembered by name only. Nothing is written to disk, so no member path, link or
device can land outside the pack: such members are reported, not extracted.

The layout follows the pack documentation (``tar -czf NAME-VERSION.tar.gz <pack-dir>``: one top
directory holding ``pack.json``). An archive of the pack's files without that directory
(``tar -czf x.tar.gz -C <pack-dir> .``) is read too: an inference, since the documents only show
the first form.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import tarfile
import typing as t
import zlib
from dataclasses import dataclass
from dataclasses import field
from gzip import BadGzipFile
from gzip import GzipFile
from pathlib import Path

from .problems import PackProblem

MiB = 1024 * 1024

PACK_JSON = "pack.json"
VALUES_YAML = "values.yaml"
LOGO_PNG = "logo.png"
#: The files kept in memory, each up to :attr:`Limits.small_file` bytes.
SMALL_FILES = (PACK_JSON, VALUES_YAML)
#: How much of ``logo.png`` is read: enough for the PNG signature.
LOGO_HEAD = 8


@dataclass(frozen=True)
class Limits:
    """How much of a pack is read before it is refused."""

    #: Archive bytes (gzip-compressed).
    compressed: int = 512 * MiB
    #: Bytes after gunzip: the cap that stops a zip bomb.
    uncompressed: int = 2048 * MiB
    #: Members (files, directories, links) of an archive or files of a directory.
    members: int = 10_000
    #: ``pack.json`` and ``values.yaml``, each.
    small_file: int = 1 * MiB
    #: A PAX or GNU long-name header, which tarfile reads whole into memory (Go's archive/tar caps
    #: these at 1 MiB too).
    header: int = 1 * MiB
    #: Member names, link targets, PAX and long-name headers, and the directories names imply, all
    #: together: a few thousand members with paths thousands of directories deep would otherwise keep
    #: gigabytes of prefixes.
    names: int = 16 * MiB


DEFAULT_LIMITS = Limits()
#: The problem of a device, fifo or socket in a pack.
SPECIAL_FILE = "devices, fifos and other special files are not pack files"


@dataclass
class PackFiles:
    """What was read of a pack: its file names and its small files, or why it could not be read."""

    #: Regular files (and links that stay inside the pack), relative to the pack's top directory.
    files: set[str] = field(default_factory=set)
    #: Directories, those listed and those implied by the files in them.
    directories: set[str] = field(default_factory=set)
    #: ``pack.json`` and ``values.yaml`` by name, when present and within the size limit.
    small: dict[str, bytes] = field(default_factory=dict)
    logo_head: bytes | None = None
    problems: list[PackProblem] = field(default_factory=list)
    #: Whether the whole pack was read; if not, the layout is not checked (what is missing is unknown).
    complete: bool = True
    #: Bytes of the names read so far, against :attr:`Limits.names`.
    name_bytes: int = 0

    def exists(self, path: str) -> bool:
        path = posixpath.normpath(path).lstrip("/")
        return path in self.files or path in self.directories


class _Stop(Exception):
    """Reading stops here; the problem says why."""

    def __init__(self, problem: PackProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _SourceError(Exception):
    """The source stream itself failed (storage, disk): not a problem of the pack, re-raised as is."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class _Counted(io.RawIOBase):
    """A readable stream that counts what passes and stops past ``limit`` bytes."""

    def __init__(self, stream: t.IO[bytes], limit: int, problem: PackProblem, *, source: bool) -> None:
        self.stream = stream
        self.limit = limit
        self.problem = problem
        self.source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.source:
            try:
                data = self.stream.read(len(view))
            except Exception as e:
                raise _SourceError(e) from e
        else:
            data = self.stream.read(len(view))
        self.count += len(data)
        if self.count > self.limit:
            raise _Stop(self.problem)
        view[: len(data)] = data
        return len(data)


#: Headers whose whole content tarfile reads into memory before the member they describe.
_HEADER_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
#: A PAX record: ``LENGTH keyword=value\n``, ``LENGTH`` counting the whole record.
_PAX_LENGTH = re.compile(rb"[1-9][0-9]{0,19} ")
#: The longest run of digits a PAX header may hold. Python before 3.11.10 and 3.12.6 searches PAX
#: headers with a pattern that takes time quadratic in such runs (CVE-2024-6232): a 1 MiB run is
#: minutes of one core, with the GIL held. Real headers have runs of about ten (times, sizes).
PAX_DIGIT_RUN = 64
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (PAX_DIGIT_RUN + 1))
SPARSE = "sparse files are not pack files"


def _pax_problem(records: bytes) -> str | None:
    """Why the content of a PAX header is refused: tarfile's own parser is quadratic on malformed
    records (its key pattern then runs on into the following records) and on long digit runs, and
    this check is linear."""
    position = 0
    while position < len(records):
        length = _PAX_LENGTH.match(records, position)
        if length is None:
            return "a PAX header record does not start with its length"
        end = position + int(length[0])
        if end > len(records) or records[end - 1 : end] != b"\n":
            return "a PAX header record does not end where its length says"
        if records.find(b"=", length.end(), end) < 0:
            return "a PAX header record has no '='"
        position = end
    if _LONG_DIGIT_RUN.search(records):
        return f"a PAX header has more than {PAX_DIGIT_RUN} digits in a row"
    return None


def _capped_headers(pack: PackFiles, limits: Limits) -> type[tarfile.TarInfo]:
    """A TarInfo that reads headers within the limits: PAX and long-name headers up to
    :attr:`Limits.header` each and counted against :attr:`Limits.names`, PAX records checked before
    tarfile parses them, and no sparse files (tarfile reads their maps into memory without a bound)."""

    class CappedTarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> t.Self:
            info = super().frombuf(buf, encoding, errors)
            if info.size < 0:
                # Base-256 sizes can be negative; tarfile would then step back over what it read.
                raise _Stop(PackProblem(info.name, "tar", "the archive is damaged: a negative member size"))
            if info.type == tarfile.GNUTYPE_SPARSE:
                raise _Stop(PackProblem(info.name, "special-file", SPARSE))
            if info.type in _HEADER_TYPES:
                if info.size > limits.header:
                    raise _Stop(
                        PackProblem(
                            "archive",
                            "header",
                            f"a PAX or long-name header is larger than {limits.header} bytes",
                        )
                    )
                _count_names(pack, info.size, limits)
            return info

        def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
            # tarfile reads the records itself: read them first, check them, and hand them back to
            # the stream they came from (stream mode: an in-memory read-ahead buffer and a position).
            stream = t.cast(t.Any, archive.fileobj)
            if not isinstance(getattr(stream, "buf", None), bytes):
                raise _Stop(
                    PackProblem("archive", "header", "this Python's tarfile cannot have PAX headers checked")
                )
            data = stream.read(t.cast(t.Any, self)._block(self.size))
            problem = _pax_problem(data[: self.size])
            if problem is not None:
                raise _Stop(PackProblem("archive", "header", problem))
            stream.buf = data + stream.buf
            stream.pos -= len(data)
            member: tarfile.TarInfo = t.cast(t.Any, super())._proc_pax(archive)
            return member

        def _proc_gnusparse_10(self, next: tarfile.TarInfo, pax_headers: t.Any, archive: t.Any) -> None:
            # GNU sparse 1.0 keeps its map in the member's data, read whole and unbounded.
            raise _Stop(
                PackProblem(str(pax_headers.get("GNU.sparse.name", next.name)), "special-file", SPARSE)
            )

    return CappedTarInfo


def read_archive(stream: t.IO[bytes], limits: Limits = DEFAULT_LIMITS) -> PackFiles:
    """Read a pack's ``.tar.gz`` from ``stream`` (which stays open).

    Errors of ``stream`` itself (a storage or disk failure) propagate; everything wrong with the bytes
    is a problem in the result.
    """
    pack = PackFiles()
    compressed = _Counted(
        stream,
        limits.compressed,
        PackProblem("archive", "size", f"the archive is larger than {limits.compressed} bytes"),
        source=True,
    )
    gunzipped = GzipFile(fileobj=io.BufferedReader(compressed), mode="rb")
    uncompressed = _Counted(
        t.cast(t.IO[bytes], gunzipped),
        limits.uncompressed,
        PackProblem(
            "archive",
            "uncompressed-size",
            f"the archive unpacks to more than {limits.uncompressed} bytes",
        ),
        source=False,
    )
    reader = io.BufferedReader(uncompressed)
    try:
        with tarfile.open(fileobj=reader, mode="r|", tarinfo=_capped_headers(pack, limits)) as archive:
            _read_members(archive, pack, limits)
            if not _ends_cleanly(archive, reader):
                pack.problems.append(
                    PackProblem(
                        "archive", "tar", "the archive is damaged: data follows a broken member header"
                    )
                )
                pack.complete = False
    except _SourceError as e:
        raise e.original from None
    except _Stop as e:
        pack.problems.append(e.problem)
        pack.complete = False
    except BadGzipFile as e:
        pack.problems.append(PackProblem("archive", "gzip", f"not a gzip file: {e}"))
        pack.complete = False
    except (EOFError, zlib.error) as e:
        pack.problems.append(PackProblem("archive", "gzip", f"the gzip data is damaged or cut short: {e}"))
        pack.complete = False
    except RecursionError:
        # tarfile reads a header that follows a PAX or long-name header by recursing.
        pack.problems.append(PackProblem("archive", "header", "too many PAX or long-name headers in a row"))
        pack.complete = False
    except (tarfile.TarError, ValueError, UnicodeError, OSError) as e:
        # What gunzips but does not untar: random bytes, a single gzipped file, a cut-off tar.
        pack.problems.append(PackProblem("archive", "tar", f"not a tar archive: {e}"))
        pack.complete = False
    return pack


def _read_members(archive: tarfile.TarFile, pack: PackFiles, limits: Limits) -> None:
    top: str | None = None
    count = 0
    links: list[tuple[str, tarfile.TarInfo]] = []
    for member in archive:
        count += 1
        if count > limits.members:
            raise _Stop(
                PackProblem("archive", "members", f"the archive has more than {limits.members} members")
            )
        name = member.name
        # Every name counts, refused ones too: tarfile keeps each member it read until the end.
        _count_names(pack, len(name) + len(member.linkname), limits)
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            pack.problems.append(PackProblem(name, "absolute-path", "an archive member has an absolute path"))
            continue
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            pack.problems.append(PackProblem(name, "parent-path", "an archive member path contains '..'"))
            continue
        if not parts:
            continue  # the "./" entry of `tar -C dir .`
        if top is None:
            # The first member decides: the pack's own directory, or (no directory) the archive root.
            top = parts[0] if (len(parts) > 1 or member.isdir()) else ""
        if top:
            if parts[0] != top:
                pack.problems.append(
                    PackProblem(name, "top-directory", f"the pack's files are all under {top}/, this is not")
                )
                continue
            parts = parts[1:]
        relative = "/".join(parts)
        if member.size > limits.uncompressed:
            raise _Stop(
                PackProblem(relative or name, "uncompressed-size", f"the member declares {member.size} bytes")
            )
        if member.isdir():
            if relative:
                _add_directory(pack, relative, limits)
            continue
        if member.issym() or member.islnk():
            if not _link_stays_inside(member, top or ""):
                pack.problems.append(
                    PackProblem(
                        relative, "link-outside", f"the link points outside the pack: {member.linkname}"
                    )
                )
                continue
            links.append((relative, member))
            _add_file(pack, relative, limits)
            continue
        if not member.isfile():
            pack.problems.append(PackProblem(relative, "special-file", SPECIAL_FILE))
            continue
        _add_file(pack, relative, limits)
        if relative in SMALL_FILES or relative == LOGO_PNG:
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            with extracted:
                if relative == LOGO_PNG:
                    pack.logo_head = extracted.read(LOGO_HEAD)
                else:
                    _keep_small(pack, relative, extracted.read(limits.small_file + 1), limits)
    _check_link_chains(pack, links)


def _check_link_chains(pack: PackFiles, links: list[tuple[str, tarfile.TarInfo]]) -> None:
    """Refuse links that go through other links. Where those lead is not in the names: ``a -> sub/..``
    is the pack's directory, and ``b -> a/..`` looks like it too but is its parent once ``a`` is a link.
    Done once every link is known, since a link may come after the ones that go through it."""
    names = {posixpath.normpath(member.name) for _, member in links if member.issym()}
    for relative, member in links:
        base = posixpath.dirname(member.name) if member.issym() else ""
        walked: list[str] = []
        for part in posixpath.join(base, member.linkname).split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if walked:
                    walked.pop()
                continue
            walked.append(part)
            if "/".join(walked) in names:
                pack.problems.append(
                    PackProblem(
                        relative, "link-outside", f"the link goes through another link: {member.linkname}"
                    )
                )
                break


def _ends_cleanly(archive: tarfile.TarFile, reader: t.IO[bytes]) -> bool:
    """Whether only zero padding follows the end of the archive.

    tarfile ends an archive at a damaged header (after the first) as silently as at the end-of-archive
    zero blocks, so a pack whose last members are damaged would pass as a smaller pack. What follows
    a real end is zeros; anything else is the rest of a damaged archive. Reading to the end (within the
    caps) also makes gzip check its CRC.
    """
    # tarfile's stream keeps what it read ahead in ``buf`` (a private attribute: absent, it counts as empty).
    pending = getattr(archive.fileobj, "buf", b"")
    if isinstance(pending, bytes) and pending.strip(b"\0"):
        return False
    while chunk := reader.read(64 * 1024):
        if chunk.strip(b"\0"):
            return False
    return True


def _link_stays_inside(member: tarfile.TarInfo, top: str) -> bool:
    target = member.linkname
    if target.startswith("/"):
        return False
    # A symbolic link is relative to its own directory, a hard link to the archive root.
    base = posixpath.dirname(member.name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        return False
    return not top or resolved == top or resolved.startswith(f"{top}/")


def _add_file(pack: PackFiles, relative: str, limits: Limits) -> None:
    pack.files.add(relative)
    parent = posixpath.dirname(relative)
    if parent:
        _add_directory(pack, parent, limits)


def _add_directory(pack: PackFiles, relative: str, limits: Limits) -> None:
    while relative and relative not in pack.directories:
        _count_names(pack, len(relative), limits)
        pack.directories.add(relative)
        relative = posixpath.dirname(relative)


def _count_names(pack: PackFiles, size: int, limits: Limits) -> None:
    pack.name_bytes += size
    if pack.name_bytes > limits.names:
        raise _Stop(PackProblem("archive", "names", f"the pack's paths take more than {limits.names} bytes"))


def _keep_small(pack: PackFiles, relative: str, content: bytes, limits: Limits) -> None:
    if len(content) > limits.small_file:
        pack.problems.append(PackProblem(relative, "size", f"larger than {limits.small_file} bytes"))
    else:
        pack.small[relative] = content


def read_directory(root: Path, limits: Limits = DEFAULT_LIMITS) -> PackFiles:
    """Read a pack directory: names of everything in it, and its small files.

    A symbolic link is followed only when it stays inside the pack, as in an archive.
    """
    pack = PackFiles()
    try:
        _walk(root, pack, limits)
    except _Stop as e:
        pack.problems.append(e.problem)
        pack.complete = False
    return pack


def _walk(root: Path, pack: PackFiles, limits: Limits) -> None:
    count = 0
    resolved_root = root.resolve()
    for directory, subdirectories, filenames in os.walk(root):
        base = Path(directory)
        for entry in sorted([*subdirectories, *filenames]):
            count += 1
            if count > limits.members:
                raise _Stop(
                    PackProblem("archive", "members", f"the pack has more than {limits.members} files")
                )
            path = base / entry
            relative = path.relative_to(root).as_posix()
            _count_names(pack, len(relative), limits)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):
                    # A loop of links (RuntimeError up to Python 3.12, OSError after).
                    pack.problems.append(
                        PackProblem(relative, "link-loop", "the link leads to a loop of links")
                    )
                    continue
                if not target.is_relative_to(resolved_root):
                    pack.problems.append(
                        PackProblem(
                            relative, "link-outside", f"the link points outside the pack: {os.readlink(path)}"
                        )
                    )
                    continue
                mode = target.stat().st_mode if target.exists() else 0
            if stat.S_ISDIR(mode):
                _add_directory(pack, relative, limits)
            elif stat.S_ISREG(mode):
                _add_file(pack, relative, limits)
                if relative in SMALL_FILES:
                    with path.open("rb") as f:
                        _keep_small(pack, relative, f.read(limits.small_file + 1), limits)
                elif relative == LOGO_PNG:
                    with path.open("rb") as f:
                        pack.logo_head = f.read(LOGO_HEAD)
            else:
                pack.problems.append(PackProblem(relative, "special-file", SPECIAL_FILE))
