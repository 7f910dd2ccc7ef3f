"""A driver on S3 (AWS, MinIO, moto: anything speaking the S3 API), keyed as distribution's ``s3`` driver.

A path maps to the key ``<rootdirectory><path>`` without its leading slash, exactly as distribution's
``s3Path`` does, so Debian's ``docker-registry`` and the emulator can serve one bucket. Directories are
only key prefixes: they exist while something is stored below them.

Writes never expose partial content: a new file is one ``PutObject`` or one multipart upload, and S3
makes either visible whole when it completes. Appends (every ``PATCH`` of a blob upload commits one)
build a new version of the object in a multipart upload and complete it on :meth:`~FileWriter.commit`:

* earlier content of at least 5 MiB becomes the first parts by server-side ``UploadPartCopy``, so
  it never crosses this process;
* smaller earlier content cannot be a part of its own (every part but the last must be 5 MiB), so it
  is read and sent in front of the new data: at most 5 MiB, once per append;
* new data is buffered up to ``chunksize`` and sent part by part.

So a writer holds at most about one ``chunksize`` plus 5 MiB in memory, whatever the file's size, and
all state between requests is the object itself: any process can continue an upload another began.
Cancelling aborts the multipart upload and leaves the earlier object untouched; deleting a directory
also aborts multipart uploads left below it by a process that died mid-write.
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
class _Version:
    """An object as it stood when a writer opened it for appending."""

    size: int
    etag: str


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
    def __init__(self, driver: S3Driver, path: str, key: str, base: _Version | None) -> None:
        self._driver = driver
        self._path = path
        self._key = key
        self._base = base
        self._size = base.size if base is not None else 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, t.Any]] = []
        # Earlier content is brought in on the first write: an append that writes nothing costs nothing.
        self._prepared = base is None or base.size == 0
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
            while len(self._buffer) >= self._driver.chunksize:
                self._send_part(self._driver.chunksize)
        except BaseException:
            self.cancel()
            raise
        return len(data)

    def commit(self) -> None:
        if self._done:
            return
        client, bucket = self._driver.client, self._driver.bucket
        try:
            with _errors(self._path):
                if self._upload_id is not None:
                    if self._buffer:
                        self._send_part(len(self._buffer))
                    client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
                elif self._prepared:
                    # Everything (earlier content included) is in the buffer: below one chunk.
                    client.put_object(
                        Bucket=bucket, Key=self._key, Body=self._buffer, **self._driver.put_args
                    )
                # Otherwise this was an append that wrote nothing: the object is already right.
        except BaseException:
            self.cancel()
            raise
        self._done = True
        self._buffer = bytearray()

    def cancel(self) -> None:
        self._done = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
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
        if base.size >= MIN_PART_SIZE:
            self._start()
            assert self._upload_id is not None
            self._parts = self._driver._copy_parts(self._key, self._key, self._upload_id, base, self._path)
        else:
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
        number = len(self._parts) + 1
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
        try:
            with _errors(path):
                return t.cast(
                    "dict[str, t.Any]", self.client.head_object(Bucket=self.bucket, Key=self._key(path))
                )
        except PathNotFound:
            return None

    # -- the contract ----------------------------------------------------------------------------------

    def get_content(self, path: str) -> bytes:
        with _errors(path):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

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
        with _errors(path):
            try:
                body = self.client.get_object(**params)["Body"]
            except ClientError as e:
                if _code(e) != "InvalidRange":
                    raise
                # S3 refuses a range starting at the end; the contract allows reading there (nothing).
                head = self.client.head_object(Bucket=self.bucket, Key=key)
                if int(head["ContentLength"]) != offset:
                    raise InvalidOffset(path) from None
                return t.cast(t.BinaryIO, io.BytesIO(b""))
        return t.cast(t.BinaryIO, io.BufferedReader(_BodyReader(body, path), CHUNK_SIZE))

    def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self._key(path)
        base = None
        if append:
            head = self._head(path)
            if head is not None:
                base = _Version(int(head["ContentLength"]), str(head["ETag"]))
        return _S3Writer(self, path, key, base)

    def stat(self, path: str) -> FileInfo:
        if check_path(path) == "/":
            return FileInfo(path, 0, 0.0, True)
        head = self._head(path)
        if head is not None:
            return FileInfo(path, int(head["ContentLength"]), head["LastModified"].timestamp(), False)
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
        head = self._head(source)
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
                self._multipart_copy(source_key, dest_key, _Version(size, str(head["ETag"])), dest)
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
        yield from _walk_tree("" if path == "/" else path, tree)

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
