"""A driver on S3 (AWS, MinIO, moto: anything speaking the S3 API), keyed as distribution's ``s3`` driver.

A path maps to the key ``<rootdirectory><path>`` without its leading slash, exactly as distribution's
``s3Path`` does, so Debian's ``docker-registry`` and the emulator can serve one bucket. Directories are
only key prefixes: they exist while something is stored below them.

Writes never expose partial content: a new file is one ``PutObject`` or one multipart upload, and S3
makes either visible whole when it completes.

Appends (every ``PATCH`` of a blob upload commits one) cost what they write, as in distribution's
driver: one multipart upload stays open across them. Between two appends such an *open file* is

* the parts of that upload, every one at least 5 MiB (S3's minimum for all parts but the last), and
* the object at the file's key, holding the last bytes that were too few for a part (under 5 MiB), with
  metadata naming the upload, how many of its parts are the file's, and the file's size.

An append sends its new data (after those last bytes, read back: at most 5 MiB) as further parts and
commits by writing the object anew: that one ``PutObject`` is atomic, so a writer that fails or is
cancelled leaves the file as it was (parts it sent beyond the committed count are ignored, and replaced
by the next writer's). ``stat`` answers from the object's metadata. Reading or moving an open file first
*settles* it: its object becomes the upload's last part (copied inside S3) and completing the upload
replaces the object with the whole file. A blob upload is settled once, when its finished data is moved
into place. Where distribution finds the open upload by listing the key's multipart uploads, the object
names it: a process that died mid-append cannot leave a second upload that would be taken for it.

So a writer holds at most about one ``chunksize`` plus 5 MiB in memory, whatever the file's size, and
all state between requests is in the bucket: any process can continue an upload another began (one
writer at a time, which :mod:`emulator.storage.uploads` ensures per process, as distribution does).
Deleting a directory also aborts the multipart uploads below it, those of open files and those left by
a process that died mid-write.
"""

from __future__ import annotations

import builtins
import collections.abc
import contextlib
import io
import logging
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

try:
    import boto3
except ModuleNotFoundError as e:
    if e.name != "boto3":
        raise
    from ..extras import S3

    raise ModuleNotFoundError(f"the s3 storage driver {S3.needs()}", name=e.name) from None
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from .base import CHUNK_SIZE
from .base import FileInfo
from .base import FileWriter
from .base import InvalidOffset
from .base import PathNotFound
from .base import StorageDriver
from .base import StorageError
from .base import StorageUnavailable
from .base import check_deletable
from .base import check_path
from .base import listable

if t.TYPE_CHECKING:
    from ..config import S3Config

log = logging.getLogger("emulator.s3")

MiB = 1 << 20
#: S3's limits: every part but the last is at least 5 MiB, none is above 5 GiB, at most 10000 parts.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10000
#: Appends copy earlier content in at most this many parts, leaving the rest for new data.
_MAX_COPY_PARTS = 1000
#: User metadata (``x-amz-meta-*``) of an object standing for an open file: the multipart upload holding
#: the rest of its content, how many of that upload's parts are the file's, and the file's size.
_META_UPLOAD = "pax-append-upload"
_META_PARTS = "pax-append-parts"
_META_SIZE = "pax-append-size"
#: How often a read tries again when another request completed an open file's upload under it.
_SETTLE_ATTEMPTS = 3
#: How long a redirect URL stays valid; distribution presigns for 20 minutes too.
REDIRECT_EXPIRY = 20 * 60
#: DeleteObjects takes at most 1000 keys.
_DELETE_BATCH = 1000

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
#: Codes worth retrying later: the backend is overloaded or failing, not refusing this request.
_UNAVAILABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
    }
)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translate(error: ClientError, path: str) -> StorageError:
    code = _code(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(error.response.get("Error", {}).get("Message", "")) or code
    if code in _NOT_FOUND_CODES:
        return PathNotFound(path)
    if code in _UNAVAILABLE_CODES or status == 429 or status >= 500:
        return StorageUnavailable(path, f"S3 {code or status}: {message}")
    # NoSuchBucket, AccessDenied and the like: configuration problems no retry will fix.
    return StorageError(path, f"S3 {code or status}: {message}")


@contextlib.contextmanager
def _errors(path: str) -> t.Iterator[None]:
    """Turn botocore's exceptions into the driver contract's."""
    try:
        yield
    except ClientError as e:
        raise _translate(e, path) from e
    except (BotoConnectionError, HTTPClientError) as e:
        # Refused, reset or timed out (connecting, or mid-response): the network or the backend is down.
        raise StorageUnavailable(path, f"S3 unreachable: {e}") from e
    except BotoCoreError as e:
        raise StorageError(path, f"S3 client error: {e}") from e


def make_client(config: S3Config) -> t.Any:
    """A boto3 S3 client configured from the ``storage.s3`` section."""
    scheme = "https" if config.secure else "http"
    endpoint: str | None = None
    if config.regionendpoint:
        endpoint = config.regionendpoint
    elif config.host:
        # The pack registry's MinIO-style ``host`` and ``port``.
        endpoint = config.host if config.port is None else f"{config.host}:{config.port}"
    if endpoint is not None and "://" not in endpoint:
        endpoint = f"{scheme}://{endpoint}"
    # distribution 2.8 forces path-style addressing whenever an endpoint is given: MinIO and other
    # S3 look-alikes rarely resolve <bucket>.<host> names.
    path_style = config.forcepathstyle or endpoint is not None
    options: dict[str, t.Any] = {
        "region_name": config.region,
        "signature_version": "s3v4" if config.v4auth else "s3",
        "s3": {"addressing_style": "path" if path_style else "auto"},
        # One connection per concurrent part copy, so the pool never discards connections.
        "max_pool_connections": max(10, min(config.multipartcopymaxconcurrency, 100)),
    }
    if config.useragent:
        options["user_agent_extra"] = config.useragent
    if "request_checksum_calculation" in BotoConfig.OPTION_DEFAULTS:
        # Checksums only where S3 requires them, as distribution sends them: S3 look-alikes often
        # reject the newer flexible-checksum headers, and CRC32 of every part costs CPU for nothing.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    credentials: dict[str, str] = {}
    if config.accesskey and config.secretkey:
        credentials = {"aws_access_key_id": config.accesskey, "aws_secret_access_key": config.secretkey}
    # Without keys, boto3's default chain applies: environment, shared files, instance roles.
    session = boto3.session.Session(**credentials)
    return session.client(
        "s3",
        endpoint_url=endpoint,
        use_ssl=config.secure,
        verify=False if config.skipverify else None,
        config=BotoConfig(**options),
    )


@dataclass(frozen=True)
class _Pending:
    """What an open file's object says of the multipart upload holding the rest of its content."""

    upload_id: str
    #: Parts 1 to ``parts`` are the file's; parts above were sent by a writer that never committed.
    parts: int
    #: The whole file: the parts and the object's own bytes.
    size: int


def _pending(metadata: collections.abc.Mapping[str, str] | None) -> _Pending | None:
    if not metadata or _META_UPLOAD not in metadata:
        return None
    try:
        return _Pending(metadata[_META_UPLOAD], int(metadata[_META_PARTS]), int(metadata[_META_SIZE]))
    except (KeyError, ValueError):
        return None  # not written by this driver: an ordinary object


@dataclass(frozen=True)
class _Version:
    """An object as it stood when it was looked at: ``size`` is the file's, ``length`` the object's own."""

    size: int
    etag: str
    length: int
    pending: _Pending | None = None


def _version(head: collections.abc.Mapping[str, t.Any]) -> _Version:
    """The version a ``HeadObject`` (or unranged ``GetObject``) answer describes."""
    length = int(head["ContentLength"])
    pending = _pending(head.get("Metadata"))
    return _Version(pending.size if pending else length, str(head["ETag"]), length, pending)


def _ranges(size: int, chunk: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges covering ``size`` in pieces of ``chunk``, none but a lone one below 5 MiB."""
    ranges = [(start, min(start + chunk, size) - 1) for start in range(0, size, chunk)]
    if len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] + 1 < MIN_PART_SIZE:
        # A short last range is folded into the one before: copied parts are followed by new data,
        # so none of them may be short.
        last = ranges.pop()
        ranges[-1] = (ranges[-1][0], last[1])
    return ranges


class _BodyReader(io.RawIOBase):
    """A ``GetObject`` body as a raw stream whose errors are the driver contract's."""

    def __init__(self, body: t.Any, path: str) -> None:
        self._body = body
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        with _errors(self._path):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _S3Writer(FileWriter):
    """A writer; ``append`` ones leave their multipart upload open at :meth:`commit` (see the module)."""

    def __init__(self, driver: S3Driver, path: str, key: str, base: _Version | None, append: bool) -> None:
        self._driver = driver
        self._path = path
        self._key = key
        self._base = base
        self._append = append
        self._size = base.size if base is not None else 0
        self._buffer = bytearray()
        pending = base.pending if base is not None else None
        #: Whether the multipart upload is an open file's, begun by an earlier writer: cancelling must
        #: then leave it open, since its committed parts are the file's content.
        self._continued = pending is not None
        self._upload_id: str | None = pending.upload_id if pending is not None else None
        #: Parts of the upload before this writer's (an open file's committed parts).
        self._earlier_parts = pending.parts if pending is not None else 0
        #: Parts this writer copied or sent, in order.
        self._parts: list[dict[str, t.Any]] = []
        # The object's own bytes are brought in on the first write: an append that writes nothing
        # costs nothing.
        self._prepared = base is None or base.length == 0
        self._wrote = False
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        if self._done:
            raise ValueError("write to a committed or cancelled writer")
        try:
            if not self._prepared:
                self._prepare()
            self._buffer += data
            self._size += len(data)
            self._wrote = self._wrote or bool(data)
            while len(self._buffer) >= self._driver.chunksize:
                self._send_part(self._driver.chunksize)
        except BaseException:
            self.cancel()
            raise
        return len(data)

    def commit(self) -> None:
        if self._done:
            return
        if self._append and self._base is not None and not self._wrote:
            # An append that wrote nothing: the file is already what it should be.
            self._done = True
            return
        client, bucket = self._driver.client, self._driver.bucket
        try:
            with _errors(self._path):
                if self._append and (self._upload_id is not None or len(self._buffer) >= MIN_PART_SIZE):
                    self._commit_open()
                elif self._upload_id is not None:
                    if self._buffer:
                        self._send_part(len(self._buffer))
                    client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
                else:
                    # Everything (the object's earlier bytes included) is in the buffer: below one chunk.
                    client.put_object(
                        Bucket=bucket, Key=self._key, Body=self._buffer, **self._driver.put_args
                    )
        except BaseException:
            self.cancel()
            raise
        self._done = True
        self._buffer = bytearray()

    def _commit_open(self) -> None:
        """Keep the upload open: bytes left that could be a part become one, fewer stay in the object,
        whose metadata now counts this writer's parts. That one ``PutObject`` is the commit."""
        if len(self._buffer) >= MIN_PART_SIZE:
            self._send_part(len(self._buffer))
        metadata = {
            _META_UPLOAD: str(self._upload_id),
            _META_PARTS: str(self._earlier_parts + len(self._parts)),
            _META_SIZE: str(self._size),
        }
        self._driver.client.put_object(
            Bucket=self._driver.bucket,
            Key=self._key,
            Body=self._buffer,
            Metadata=metadata,
            **self._driver.put_args,
        )

    def cancel(self) -> None:
        self._done = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None or self._continued:
            # An open file's parts above its committed count are ignored, and replaced by the next
            # writer's: the file stays as its object says.
            return
        try:
            self._driver.client.abort_multipart_upload(
                Bucket=self._driver.bucket, Key=self._key, UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as e:
            # The earlier object is intact either way; deleting the directory aborts it again later.
            log.warning("could not abort the multipart upload of %s: %s", self._path, e)

    def _prepare(self) -> None:
        base = self._base
        assert base is not None
        self._prepared = True
        if base.pending is None and base.length >= MIN_PART_SIZE:
            self._start()
            assert self._upload_id is not None
            self._parts = self._driver._copy_parts(self._key, self._key, self._upload_id, base, self._path)
        else:
            # A small object, or an open file's last bytes: under 5 MiB, sent again in front of the
            # new data since no part but the last may be that short.
            self._buffer = bytearray(self._driver._read_version(self._key, base, self._path))

    def _start(self) -> None:
        if self._upload_id is None:
            with _errors(self._path):
                created = self._driver.client.create_multipart_upload(
                    Bucket=self._driver.bucket, Key=self._key, **self._driver.put_args
                )
            self._upload_id = str(created["UploadId"])

    def _send_part(self, length: int) -> None:
        self._start()
        # Hand the buffer itself to boto3 and keep only the (small) remainder: no copy of the part.
        part, self._buffer = self._buffer, self._buffer[length:]
        del part[length:]
        number = self._earlier_parts + len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(self._path, f"file too large for {MAX_PARTS} parts of chunksize")
        with _errors(self._path):
            sent = self._driver.client.upload_part(
                Bucket=self._driver.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
            )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})


class S3Driver(StorageDriver):
    """Files as objects in one bucket, under ``rootdirectory``.

    :param config: the ``storage.s3`` section.
    :param client: a ready boto3 S3 client, instead of one built from ``config``.
    """

    name = "s3"
    local = False
    local_files = False

    def __init__(self, config: S3Config | None, *, client: t.Any = None) -> None:
        if config is None:
            raise ValueError("the s3 driver needs a storage.s3 section")
        self.config = config
        self.bucket = config.bucket
        self.chunksize = min(max(config.chunksize, MIN_PART_SIZE), MAX_PART_SIZE)
        self.client = client if client is not None else make_client(config)
        self._root = config.rootdirectory.rstrip("/")
        #: Arguments for every object this driver creates.
        self.put_args: dict[str, str] = {"ContentType": "application/octet-stream", "ACL": config.objectacl}
        if config.storageclass and config.storageclass.upper() != "NONE":
            self.put_args["StorageClass"] = config.storageclass
        if config.encrypt:
            self.put_args["ServerSideEncryption"] = "aws:kms" if config.keyid else "AES256"
            if config.keyid:
                self.put_args["SSEKMSKeyId"] = config.keyid
        self._copy_args = {k: v for k, v in self.put_args.items() if k != "ContentType"}

    # -- keys ------------------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        """The root prefix, then the checked path: no key a path leads to lies outside the root. (S3
        never resolves ``..`` in a key, but proxies and S3 look-alikes may, so none gets this far.)"""
        return (self._root + check_path(path)).lstrip("/")

    def _prefix(self, path: str) -> str:
        """The key prefix of everything below the directory ``path``."""
        if check_path(path) == "/":
            root = self._root.lstrip("/")
            return f"{root}/" if root else ""
        return self._key(path) + "/"

    def _pages(self, path: str, operation: str, **params: t.Any) -> t.Iterator[dict[str, t.Any]]:
        with _errors(path):
            yield from self.client.get_paginator(operation).paginate(Bucket=self.bucket, **params)

    def _head(self, path: str) -> dict[str, t.Any] | None:
        return self._head_key(path, self._key(path))

    def _head_key(self, path: str, key: str) -> dict[str, t.Any] | None:
        try:
            with _errors(path):
                return t.cast("dict[str, t.Any]", self.client.head_object(Bucket=self.bucket, Key=key))
        except PathNotFound:
            return None

    # -- the contract ----------------------------------------------------------------------------------

    def get_content(self, path: str) -> bytes:
        key = self._key(path)
        for _ in range(_SETTLE_ATTEMPTS):
            with _errors(path):
                answer = self.client.get_object(Bucket=self.bucket, Key=key)
                body = answer["Body"]
                try:
                    if _pending(answer.get("Metadata")) is None:
                        return bytes(body.read())
                finally:
                    body.close()
            self._settle(path, key, _version(answer))
        raise StorageUnavailable(path, "the file kept changing while it was read")

    def put_content(self, path: str, content: bytes) -> None:
        with _errors(path):
            self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=content, **self.put_args)

    def reader(self, path: str, offset: int = 0) -> t.BinaryIO:
        key = self._key(path)
        if offset < 0:
            raise InvalidOffset(path)
        params: dict[str, t.Any] = {"Bucket": self.bucket, "Key": key}
        if offset:
            params["Range"] = f"bytes={offset}-"
        for _ in range(_SETTLE_ATTEMPTS):
            with _errors(path):
                try:
                    answer = self.client.get_object(**params)
                except ClientError as e:
                    if _code(e) != "InvalidRange":
                        raise
                    # S3 refuses a range starting at the end; the contract allows reading there
                    # (nothing). An open file's object is shorter than the file: settled, then read.
                    version = _version(self.client.head_object(Bucket=self.bucket, Key=key))
                    if version.pending is None:
                        if version.size != offset:
                            raise InvalidOffset(path) from None
                        return t.cast(t.BinaryIO, io.BytesIO(b""))
                else:
                    if _pending(answer.get("Metadata")) is None:
                        return t.cast(
                            t.BinaryIO, io.BufferedReader(_BodyReader(answer["Body"], path), CHUNK_SIZE)
                        )
                    answer["Body"].close()
                    # A ranged answer tells the range's length, not the object's: ask for the whole.
                    version = _version(self.client.head_object(Bucket=self.bucket, Key=key))
            if version.pending is not None:
                self._settle(path, key, version)
        raise StorageUnavailable(path, "the file kept changing while it was read")

    def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self._key(path)
        base = None
        if append:
            head = self._head(path)
            if head is not None:
                base = _version(head)
        return _S3Writer(self, path, key, base, append)

    def stat(self, path: str) -> FileInfo:
        if check_path(path) == "/":
            return FileInfo(path, 0, 0.0, True)
        head = self._head(path)
        if head is not None:
            return FileInfo(path, _version(head).size, head["LastModified"].timestamp(), False)
        # Not a file: a directory if anything lies below. (This LIST also tells a missing bucket,
        # which HEAD cannot, from a missing key.)
        with _errors(path):
            below = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._prefix(path), MaxKeys=1)
        contents = below.get("Contents") or []
        if not contents:
            raise PathNotFound(path)
        return FileInfo(path, 0, contents[0]["LastModified"].timestamp(), True)

    def list(self, path: str) -> list[str]:
        prefix = self._prefix(path)
        names: set[str] = set()
        for page in self._pages(path, "list_objects_v2", Prefix=prefix, Delimiter="/"):
            names.update(item["Key"][len(prefix) :] for item in page.get("Contents", ()))
            names.update(item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", ()))
        names = {name for name in names if listable(name)}
        if not names and path != "/":
            raise PathNotFound(path)
        base = "" if path == "/" else path
        return [f"{base}/{name}" for name in sorted(names)]

    def move(self, source: str, dest: str) -> None:
        head = self._settled_head(source)
        if head is None:
            raise PathNotFound(source)
        source_key, dest_key = self._key(source), self._key(dest)
        size = int(head["ContentLength"])
        with _errors(dest):
            if size <= self.config.multipartcopythresholdsize:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=dest_key,
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                    CopySourceIfMatch=head["ETag"],
                    **self._copy_args,
                )
            else:
                self._multipart_copy(source_key, dest_key, _version(head), dest)
        with _errors(source):
            self.client.delete_object(Bucket=self.bucket, Key=source_key)

    def delete(self, path: str) -> None:
        key = self._key(check_deletable(path))
        found = False
        batch: list[str] = []
        if path != "/" and self._head(path) is not None:
            batch.append(key)
        for page in self._pages(path, "list_objects_v2", Prefix=self._prefix(path)):
            batch.extend(item["Key"] for item in page.get("Contents", ()))
            while len(batch) >= _DELETE_BATCH:
                self._delete_keys(path, batch[:_DELETE_BATCH])
                del batch[:_DELETE_BATCH]
                found = True
        if batch:
            self._delete_keys(path, batch)
            found = True
        # Multipart uploads below the path belong to writers that will never commit (a cancelled or
        # purged blob upload, a crashed process): abort them so S3 stops keeping their parts.
        upload_prefix = key if path != "/" else self._prefix(path)
        for page in self._pages(path, "list_multipart_uploads", Prefix=upload_prefix):
            for upload in page.get("Uploads", ()):
                if path == "/" or upload["Key"] == key or upload["Key"].startswith(key + "/"):
                    with contextlib.suppress(PathNotFound), _errors(path):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    found = True
        if not found and path != "/":
            raise PathNotFound(path)

    def redirect_url(self, path: str, method: str) -> str | None:
        # Only GET is sent away: HEAD is answered from metadata the registry already has, and a URL
        # presigned for GET would not be valid for HEAD anyway (the method is signed).
        if method != "GET":
            return None
        with _errors(path):
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": self._key(path)},
                    ExpiresIn=REDIRECT_EXPIRY,
                )
            )

    def walk(self, path: str) -> t.Iterator[FileInfo]:
        # One listing of every key below, rather than a LIST and a HEAD per entry.
        prefix = self._prefix(path)
        tree: dict[str, t.Any] = {}
        for page in self._pages(path, "list_objects_v2", Prefix=prefix):
            for item in page.get("Contents", ()):
                parts = item["Key"][len(prefix) :].split("/")
                if not all(map(listable, parts)):
                    continue  # no valid path ("a//b", "dir/", "a/../b"): never handed out
                node: t.Any = tree
                for part in parts[:-1]:
                    node = node.setdefault(part, {})
                    if not isinstance(node, dict):
                        break  # a file shadows a directory of the same name, as in stat()
                else:
                    node[parts[-1]] = (int(item["Size"]), item["LastModified"].timestamp())
        if not tree and path != "/":
            raise PathNotFound(path)
        self._open_file_sizes(path, prefix, tree)
        yield from _walk_tree("" if path == "/" else path, tree)

    def _open_file_sizes(self, path: str, prefix: str, tree: dict[str, t.Any]) -> None:
        """Give open files in ``tree`` their size, not their object's: only keys with a multipart
        upload can be open files, and those are few (uploads between two requests)."""
        for page in self._pages(path, "list_multipart_uploads", Prefix=prefix):
            for upload in page.get("Uploads", ()):
                *parents, name = upload["Key"][len(prefix) :].split("/")
                parent: t.Any = tree
                for part in parents:
                    parent = parent.get(part) if isinstance(parent, dict) else None
                if not isinstance(parent, dict) or not isinstance(parent.get(name), tuple):
                    continue  # no file of the walk: an upload of a file never committed
                head = self._head_key(path, upload["Key"])
                if head is not None and (pending := _pending(head.get("Metadata"))) is not None:
                    parent[name] = (pending.size, parent[name][1])

    # -- helpers ---------------------------------------------------------------------------------------

    def _delete_keys(self, path: str, keys: builtins.list[str]) -> None:
        with _errors(path):
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            failure = ClientError({"Error": first, "ResponseMetadata": {}}, "DeleteObjects")
            raise _translate(failure, path)

    def _settled_head(self, path: str) -> dict[str, t.Any] | None:
        """The object at ``path`` once it holds the whole file: an open file is settled first."""
        key = self._key(path)
        for _ in range(_SETTLE_ATTEMPTS):
            head = self._head_key(path, key)
            if head is None:
                return None
            version = _version(head)
            if version.pending is None:
                return head
            self._settle(path, key, version)
        raise StorageUnavailable(path, "the file kept changing while it was read")

    def _settle(self, path: str, key: str, version: _Version) -> None:
        """Make an open file's object hold the whole file: its own bytes become the upload's last part
        (copied inside S3), and completing the upload replaces the object in one step.

        Another request may have settled (or appended to) the file meanwhile: its upload is then gone or
        the object changed, and the caller looks again.
        """
        pending = version.pending
        assert pending is not None
        parts: builtins.list[dict[str, t.Any]] = []
        try:
            for page in self._pages(path, "list_parts", Key=key, UploadId=pending.upload_id):
                parts.extend(
                    {"ETag": part["ETag"], "PartNumber": int(part["PartNumber"])}
                    for part in page.get("Parts", ())
                    if int(part["PartNumber"]) <= pending.parts
                )
            if len(parts) != pending.parts:
                raise StorageError(
                    path, f"the open file's multipart upload has {len(parts)} of its {pending.parts} parts"
                )
            with _errors(path):
                if version.length:
                    copied = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=pending.upload_id,
                        PartNumber=pending.parts + 1,
                        CopySource={"Bucket": self.bucket, "Key": key},
                        CopySourceRange=f"bytes=0-{version.length - 1}",
                        CopySourceIfMatch=version.etag,
                    )
                    parts.append({"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": pending.parts + 1})
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=pending.upload_id,
                    MultipartUpload={"Parts": sorted(parts, key=lambda part: part["PartNumber"])},
                )
        except PathNotFound:
            # Completed by another request (the caller looks again), unless the object still names it:
            # then the upload was aborted under the file (an S3 lifecycle rule, say) and its parts are lost.
            head = self._head_key(path, key)
            now = _pending(head.get("Metadata")) if head is not None else None
            if now is not None and now.upload_id == pending.upload_id:
                raise StorageError(path, "the multipart upload holding the file is gone") from None
        except StorageError as e:
            if not isinstance(e.__cause__, ClientError) or _code(e.__cause__) != "PreconditionFailed":
                raise
            # The object changed since it was looked at: look again.

    def _read_version(self, key: str, version: _Version, path: str) -> bytes:
        with _errors(path):
            body = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=version.etag)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def _copy_parts(
        self, source_key: str, dest_key: str, upload_id: str, version: _Version, path: str
    ) -> builtins.list[dict[str, t.Any]]:
        """Copy ``version`` of ``source_key`` server-side as the first parts of a multipart upload."""
        chunk = max(self.config.multipartcopychunksize, -(-version.size // _MAX_COPY_PARTS))
        ranges = _ranges(version.size, min(chunk, MAX_PART_SIZE))

        def copy(numbered: tuple[int, tuple[int, int]]) -> dict[str, t.Any]:
            number, (first, last) = numbered
            with _errors(path):
                copied = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dest_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                    CopySourceRange=f"bytes={first}-{last}",
                    CopySourceIfMatch=version.etag,
                )
            return {"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": number}

        numbered = list(enumerate(ranges, 1))
        workers = min(self.config.multipartcopymaxconcurrency, len(numbered))
        if workers <= 1:
            return [copy(item) for item in numbered]
        with ThreadPoolExecutor(workers, thread_name_prefix="s3-copy") as pool:
            return list(pool.map(copy, numbered))

    def _multipart_copy(self, source_key: str, dest_key: str, version: _Version, path: str) -> None:
        with _errors(path):
            upload_id = str(
                self.client.create_multipart_upload(Bucket=self.bucket, Key=dest_key, **self.put_args)[
                    "UploadId"
                ]
            )
        try:
            parts = self._copy_parts(source_key, dest_key, upload_id, version, path)
            with _errors(path):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=dest_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=dest_key, UploadId=upload_id)
            raise


def _walk_tree(base: str, tree: collections.abc.Mapping[str, t.Any]) -> t.Iterator[FileInfo]:
    for name in sorted(tree):
        node = tree[name]
        path = f"{base}/{name}"
        if isinstance(node, dict):
            yield FileInfo(path, 0, _latest(node), True)
            yield from _walk_tree(path, node)
        else:
            yield FileInfo(path, node[0], node[1], False)


def _latest(tree: collections.abc.Mapping[str, t.Any]) -> float:
    times = [_latest(node) if isinstance(node, dict) else node[1] for node in tree.values()]
    return max(times, default=0.0)
