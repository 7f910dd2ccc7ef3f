"""The emulator on S3 storage, end to end, against real components on loopback.

moto's S3 server over HTTP (in this process), Debian's ``redis-server`` and ``docker-registry`` (child
processes), the emulator both in-process and as ``python -m emulator serve``, and skopeo and oras-py as
clients. S3 faults come from a small HTTP proxy in front of moto that answers chosen requests with S3's
own error documents, and from deleting the bucket for real.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import typing as t
import uuid
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import emulator
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import free_port
from tests.peers import require

pytest.importorskip("moto.server", reason="needs moto[server]")

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
QUIET = {"level": "error", "accesslog": {"disabled": True}}
SECRET = "shared-secret-for-both-processes"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- fixtures: moto, buckets, redis ----------------------------------------------------------------------


class Moto:
    """moto's S3 server over HTTP on loopback, in this process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.client = s3_client(self.endpoint_url)

    def new_bucket(self) -> Bucket:
        bucket = Bucket(self, f"test-{uuid.uuid4().hex[:16]}")
        bucket.create()
        return bucket


def s3_client(endpoint_url: str) -> t.Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


class Bucket:
    """One bucket on moto, and what the tests inspect in it."""

    rootdirectory = "/reg"

    def __init__(self, moto: Moto, name: str) -> None:
        self.endpoint_url = moto.endpoint_url
        self.client = moto.client
        self.bucket = name

    @property
    def section(self) -> dict[str, t.Any]:
        """The ``storage.s3`` section, as docker-registry takes it too."""
        return {
            "region": "us-east-1",
            "bucket": self.bucket,
            "accesskey": ACCESS_KEY,
            "secretkey": SECRET_KEY,
            "regionendpoint": self.endpoint_url,
            "secure": False,
            "v4auth": True,
            "rootdirectory": self.rootdirectory,
        }

    def create(self) -> None:
        self.client.create_bucket(Bucket=self.bucket)

    def keys(self) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found.extend(item["Key"] for item in page.get("Contents", ()))
        return found

    def multipart_uploads(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in answer.get("Uploads", ())]

    def delete(self) -> None:
        """Empty the bucket (objects and multipart uploads) and remove it."""
        for key in self.keys():
            self.client.delete_object(Bucket=self.bucket, Key=key)
        for upload in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", ()):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        self.client.delete_bucket(Bucket=self.bucket)


@pytest.fixture(scope="module")
def moto() -> t.Iterator[Moto]:
    server = Moto()
    yield server
    server.server.stop()


@pytest.fixture
def bucket(moto: Moto) -> t.Iterator[Bucket]:
    created = moto.new_bucket()
    yield created
    with contextlib.suppress(Exception):  # a test may have deleted it already
        created.delete()


def s3_section(bucket: Bucket, endpoint: str | None = None) -> dict[str, t.Any]:
    return {**bucket.section, "regionendpoint": endpoint or bucket.endpoint_url}


def config(
    bucket: Bucket,
    *,
    redirect: bool = False,
    redis: str | None = None,
    endpoint: str | None = None,
) -> dict[str, t.Any]:
    """A complete configuration (also for ``python -m emulator serve``) storing in ``bucket``."""
    storage: dict[str, t.Any] = {
        "s3": s3_section(bucket, endpoint),
        "redirect": {"disable": not redirect},
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }
    document: dict[str, t.Any] = {
        "version": "0.1",
        "log": QUIET,
        "storage": storage,
        "http": {"addr": "127.0.0.1:0", "secret": SECRET},
    }
    if redis is not None:
        storage["cache"] = {"blobdescriptor": "redis"}
        document["redis"] = {
            "addr": redis,
            "dialtimeout": "500ms",
            "readtimeout": "500ms",
            "writetimeout": "500ms",
        }
    return document


class RedisServer:
    """Debian's ``redis-server`` on a loopback port, in memory only, stopped by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self) -> t.Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # in case a test paused it
            process.terminate()
            process.wait(10)


@pytest.fixture
def redis_server() -> t.Iterator[RedisServer]:
    require("redis-server")
    pytest.importorskip("redis")
    server = RedisServer().start()
    yield server
    server.stop()


# -- a minimal registry client -------------------------------------------------------------------------


def rebase(location: str, base: str) -> str:
    """``location`` (an upload URL one process gave) sent to the process at ``base`` instead."""
    parts = urlsplit(location)
    return f"{base}{parts.path}?{parts.query}" if parts.query else f"{base}{parts.path}"


@dataclass
class Client:
    """The v2 push and pull calls the tests need, over ``requests``; uploads may hop between processes."""

    bases: list[str]
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        return self.bases[0]

    def push_blob(self, repo: str, data: bytes, *, chunks: t.Sequence[int] = (), hop: bool = True) -> str:
        """Start on the first process, send ``chunks`` (sizes) as PATCHes rotating through the processes,
        and finish with the rest on the first. Without chunks: POST then one PUT."""
        digest = sha256(data)
        started = self.session.post(f"{self.base}/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        offset = 0
        for number, size in enumerate(chunks, 1):
            target = self.bases[number % len(self.bases)] if hop else self.base
            piece = data[offset : offset + size]
            answer = self.session.patch(
                rebase(location, target),
                data=piece,
                headers={
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert answer.status_code == 202, answer.text
            offset += len(piece)
            assert answer.headers["Range"] == f"0-{offset - 1}"
            location = answer.headers["Location"]
        finished = self.session.put(
            rebase(location, self.base), params={"digest": digest}, data=data[offset:]
        )
        assert finished.status_code == 201, finished.text
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: bytes) -> str:
        answer = self.session.put(
            f"{self.base}/v2/{repo}/manifests/{reference}",
            data=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.headers["Docker-Content-Digest"])

    def blob(self, repo: str, digest: str, base: str | None = None) -> bytes:
        answer = self.session.get(f"{base or self.base}/v2/{repo}/blobs/{digest}")
        assert answer.status_code == 200, answer.text
        return answer.content

    def manifest(self, repo: str, reference: str, base: str | None = None) -> requests.Response:
        return self.session.get(
            f"{base or self.base}/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )


def image_manifest(config_blob: bytes, layers: t.Sequence[bytes]) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config_blob),
            "size": len(config_blob),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(layer),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    return json.dumps(document, sort_keys=True).encode()


def error_code(answer: requests.Response) -> str:
    assert "Traceback" not in answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    return str(answer.json()["errors"][0]["code"])


def keys_with(bucket: Bucket, fragment: str) -> list[str]:
    stored = bucket.keys()
    return [key for key in stored if fragment in key]


def multipart_uploads(bucket: Bucket) -> list[str]:
    return bucket.multipart_uploads()


# -- the registry on S3, in-process ----------------------------------------------------------------------


def test_layout_is_distributions(bucket: Bucket) -> None:
    """Keys sit where distribution's s3 driver puts them, under the rootdirectory, with nothing left of
    the upload (no upload keys, no multipart upload)."""
    data = os.urandom(6 * MiB + 5)
    with emulator.start(config(bucket)) as server:
        client = Client([server.url])
        digest = client.push_blob("team/app", data, chunks=[MiB, 5 * MiB])
        manifest = image_manifest(b"{}", [data])
        client.push_blob("team/app", b"{}")
        manifest_digest = client.push_manifest("team/app", "v1", manifest)
    hexa, manifest_hex = digest.split(":")[1], manifest_digest.split(":")[1]
    root = "reg/docker/registry/v2"
    keys = set(bucket.keys())
    assert f"{root}/blobs/sha256/{hexa[:2]}/{hexa}/data" in keys
    assert f"{root}/repositories/team/app/_layers/sha256/{hexa}/link" in keys
    assert f"{root}/repositories/team/app/_manifests/revisions/sha256/{manifest_hex}/link" in keys
    assert f"{root}/repositories/team/app/_manifests/tags/v1/current/link" in keys
    assert f"{root}/repositories/team/app/_manifests/tags/v1/index/sha256/{manifest_hex}/link" in keys
    assert not [key for key in keys if "/_uploads/" in key]
    assert all(key.startswith(f"{root}/") for key in keys)
    assert multipart_uploads(bucket) == []
    link = bucket.client.get_object(
        Bucket=bucket.bucket, Key=f"{root}/repositories/team/app/_layers/sha256/{hexa}/link"
    )["Body"].read()
    assert link == digest.encode()


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "no-redirect"])
def test_blob_get_and_head(bucket: Bucket, redirect: bool) -> None:
    data = os.urandom(300_000)
    with emulator.start(config(bucket, redirect=redirect)) as server:
        client = Client([server.url])
        digest = client.push_blob("r/img", data)
        url = f"{server.url}/v2/r/img/blobs/{digest}"
        first = requests.get(url, allow_redirects=False)
        if redirect:
            assert first.status_code == 307
            location = first.headers["Location"]
            assert location.startswith(f"{bucket.endpoint_url}/{bucket.bucket}/reg/docker/registry/v2/blobs/")
            assert "X-Amz-Signature=" in location
            assert requests.get(location).content == data
        else:
            assert first.status_code == 200
            assert first.content == data
        # HEAD is answered from metadata, never redirected.
        head = requests.head(url, allow_redirects=False)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(data))
        assert head.headers["Docker-Content-Digest"] == digest
        assert client.blob("r/img", digest) == data
        ranged = requests.get(url, headers={"Range": "bytes=1000-1999"}, allow_redirects=False)
        if not redirect:
            assert (ranged.status_code, ranged.content) == (206, data[1000:2000])


def test_chunked_upload_across_part_boundaries(bucket: Bucket) -> None:
    """PATCHes smaller and larger than a part, and a last piece in the PUT: each PATCH is a commit."""
    data = os.urandom(23 * MiB + 123)
    chunks = [3 * MiB, 4 * MiB, 1, 11 * MiB, 100]
    with emulator.start(config(bucket)) as server:
        client = Client([server.url])
        digest = client.push_blob("chunky", data, chunks=chunks)
        assert hashlib.sha256(client.blob("chunky", digest)).hexdigest() == digest.split(":")[1]
    assert multipart_uploads(bucket) == []


def test_upload_status_and_cancel(bucket: Bucket) -> None:
    with emulator.start(config(bucket)) as server:
        started = requests.post(f"{server.url}/v2/c/blobs/uploads/")
        location = started.headers["Location"]
        patched = requests.patch(location, data=b"x" * 1000, headers={"Content-Range": "0-999"})
        assert patched.status_code == 202
        status = requests.get(patched.headers["Location"])
        assert (status.status_code, status.headers["Range"]) == (204, "0-999")
        assert requests.delete(patched.headers["Location"]).status_code == 204
        assert error_code(requests.get(patched.headers["Location"])) == "BLOB_UPLOAD_UNKNOWN"
    assert keys_with(bucket, "/_uploads/") == []


def test_interrupted_upload_is_aborted_on_cancel_and_purge(bucket: Bucket) -> None:
    """A process killed mid-PATCH leaves a multipart upload with parts in S3: cancelling the upload (on
    another process) aborts it; so does purging an old upload."""
    with RegistryProcess(config(bucket)) as first:
        started = requests.post(f"{first.url}/v2/killed/blobs/uploads/")
        location = started.headers["Location"]
        upload_id = started.headers["Docker-Upload-UUID"]
        parts = urlsplit(location)
        connection = http.client.HTTPConnection("127.0.0.1", first.port, timeout=30)
        connection.putrequest("PATCH", f"{parts.path}?{parts.query}")
        connection.putheader("Content-Length", str(40 * MiB))
        connection.putheader("Content-Type", "application/octet-stream")
        connection.endheaders()
        block = os.urandom(MiB)
        for _ in range(25):
            connection.send(block)
        key = f"reg/docker/registry/v2/repositories/killed/_uploads/{upload_id}/data"
        deadline = time.monotonic() + 30
        while key not in multipart_uploads(bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        connection.close()
    assert key in multipart_uploads(bucket)
    with emulator.start(config(bucket)) as second:
        assert requests.delete(rebase(location, second.url)).status_code == 204
        assert multipart_uploads(bucket) == []
        # An upload abandoned long ago: purging deletes its files and aborts its multipart upload.
        started = requests.post(f"{second.url}/v2/old/blobs/uploads/")
        old_key = (
            f"reg/docker/registry/v2/repositories/old/_uploads/{started.headers['Docker-Upload-UUID']}/data"
        )
        bucket.client.create_multipart_upload(Bucket=bucket.bucket, Key=old_key)
        app = t.cast(emulator.RegistryApp, second.app)
        purged = app.registry.uploads.purge(datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
        assert len(purged) == 1
    assert multipart_uploads(bucket) == []
    assert keys_with(bucket, "/_uploads/") == []


# -- two processes, one bucket, one redis --------------------------------------------------------------


@pytest.fixture
def two_processes(
    bucket: Bucket, redis_server: RedisServer
) -> t.Iterator[tuple[RegistryProcess, RegistryProcess]]:
    document = config(bucket, redirect=True, redis=redis_server.addr)
    with RegistryProcess(document) as first, RegistryProcess(document) as second:
        yield first, second


def test_upload_hops_between_processes(
    two_processes: tuple[RegistryProcess, RegistryProcess], redis_server: RedisServer
) -> None:
    first, second = two_processes
    data = os.urandom(9 * MiB + 7)
    client = Client([first.url, second.url])
    # Started on the first, 6 MiB on the second, 1 KiB on the first, the rest in the PUT on the first.
    digest = client.push_blob("hop/img", data, chunks=[6 * MiB, 1024])
    assert client.blob("hop/img", digest, base=second.url) == data
    assert client.blob("hop/img", digest, base=first.url) == data
    cache = redis_server.client()
    assert cache.hget(f"blobs::{digest}", "size") == str(len(data))
    assert cache.sismember("repository::hop/img::blobs", digest)
    # A delete through one process is seen at once by the other: the cache is shared, not per process.
    assert requests.delete(f"{first.url}/v2/hop/img/blobs/{digest}").status_code == 202
    assert requests.head(f"{second.url}/v2/hop/img/blobs/{digest}").status_code == 404


def test_tampered_and_stale_state_tokens(two_processes: tuple[RegistryProcess, RegistryProcess]) -> None:
    first, second = two_processes
    started = requests.post(f"{first.url}/v2/tamper/blobs/uploads/")
    location = started.headers["Location"]
    parts = urlsplit(location)
    state = dict(p.split("=", 1) for p in parts.query.split("&"))["_state"]
    forged = state[:-3] + ("AAA" if state[-3:] != "AAA" else "BBB")
    tampered = f"{second.url}{parts.path}?_state={forged}"
    answer = requests.patch(tampered, data=b"abc", headers={"Content-Range": "0-2"})
    assert answer.status_code == 404
    assert error_code(answer) == "BLOB_UPLOAD_INVALID"
    # The genuine token still works on the other process; reusing it afterwards is stale.
    moved = requests.patch(rebase(location, second.url), data=b"abc", headers={"Content-Range": "0-2"})
    assert moved.status_code == 202
    stale = requests.patch(rebase(location, first.url), data=b"def", headers={"Content-Range": "0-2"})
    assert stale.status_code == 416
    assert error_code(stale) == "RANGE_INVALID"


def test_concurrent_clients_through_both_processes(
    two_processes: tuple[RegistryProcess, RegistryProcess],
) -> None:
    """8 clients push overlapping images at once, their uploads hopping between the two processes."""
    first, second = two_processes
    shared_big = os.urandom(6 * MiB + 11)
    shared_small = [os.urandom(50_000 + n) for n in range(3)]
    images: dict[int, tuple[bytes, list[bytes]]] = {}
    for number in range(4):
        images[number] = (
            json.dumps({"image": number}).encode(),
            [shared_big, shared_small[number % 3], os.urandom(200_000)],
        )
    failures: list[BaseException] = []
    barrier = threading.Barrier(8)
    pushed: dict[int, str] = {}

    def push(number: int) -> None:
        try:
            bases = [first.url, second.url] if number % 2 else [second.url, first.url]
            client = Client(bases)
            config_blob, layers = images[number % 4]
            barrier.wait()
            client.push_blob("load/app", config_blob)
            for index, layer in enumerate(layers):
                chunks = [MiB, 5 * MiB] if len(layer) > MiB and index == 0 and number < 4 else []
                client.push_blob("load/app", layer, chunks=chunks)
            manifest = image_manifest(config_blob, layers)
            pushed[number] = client.push_manifest("load/app", f"image{number % 4}", manifest)
            client.push_manifest("load/app", f"client{number}", manifest)
        except BaseException as e:  # reported in the test thread
            failures.append(e)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert failures == []
    reader = Client([first.url])
    for base in (first.url, second.url):
        for number in range(8):
            config_blob, layers = images[number % 4]
            expected = image_manifest(config_blob, layers)
            for tag in (f"image{number % 4}", f"client{number}", pushed[number]):
                answer = reader.manifest("load/app", tag, base=base)
                assert answer.status_code == 200
                assert answer.content == expected
            for blob in (config_blob, *layers):
                assert reader.blob("load/app", sha256(blob), base=base) == blob
    tags = requests.get(f"{first.url}/v2/load/app/tags/list").json()["tags"]
    assert sorted(tags) == sorted([f"image{n}" for n in range(4)] + [f"client{n}" for n in range(8)])


# -- redis outages -------------------------------------------------------------------------------------


def test_redis_outage_degrades_to_no_cache(
    bucket: Bucket, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    from emulator.storage import rediscache

    data = os.urandom(10_000)
    with emulator.start(config(bucket, redis=redis_server.addr)) as server:
        client = Client([server.url])
        digest = client.push_blob("cached", data)
        blob_url = f"{server.url}/v2/cached/blobs/{digest}"
        assert requests.head(blob_url).status_code == 200
        assert redis_server.client().sismember("repository::cached::blobs", digest)
        assert redis_server.process is not None
        # Paused, Redis accepts connections but never answers: the worst kind of outage.
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            with caplog.at_level(logging.WARNING, logger="emulator.redis"):
                assert requests.head(blob_url).status_code == 200
                # Unlinked while the cache cannot hear of it...
                assert requests.delete(blob_url).status_code == 202
                assert requests.head(blob_url).status_code == 404
                other = client.push_blob("cached", os.urandom(500))
                assert requests.head(f"{server.url}/v2/cached/blobs/{other}").status_code == 200
            warnings = [
                r for r in caplog.records if r.name == "emulator.redis" and r.levelno == logging.WARNING
            ]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        time.sleep(rediscache.RETRY_AFTER + 0.2)
        # ...and not served from the stale entry once Redis is back: the invalidation was replayed.
        assert requests.head(blob_url).status_code == 404
        assert not redis_server.client().sismember("repository::cached::blobs", digest)
        assert requests.head(f"{server.url}/v2/cached/blobs/{other}").status_code == 200
        assert redis_server.client().exists(f"blobs::{other}")


# -- S3 faults -----------------------------------------------------------------------------------------


@dataclass
class Rule:
    method: str
    contains: str
    status: int
    code: str
    times: int | None
    hits: int = 0


class FaultProxy:
    """An HTTP proxy in front of moto that answers matching S3 requests with an S3 error document."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: t.Any) -> None:
                pass

            def handle_one(self) -> None:
                body = self._body()
                rule = proxy.match(self.command, self.path)
                if rule is not None:
                    document = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule.code}</Code>'
                        f"<Message>injected</Message><RequestId>fault</RequestId></Error>"
                    ).encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(document)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(document)
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, timeout=60
                )
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("connection", "transfer-encoding")
                }
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in (
                        "connection",
                        "transfer-encoding",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(key, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    pieces = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        pieces.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(pieces)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, method: str, contains: str, *, status: int, code: str, times: int | None = None) -> Rule:
        rule = Rule(method, contains, status, code, times)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def match(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                if rule.method in ("*", method) and rule.contains in path:
                    rule.hits += 1
                    return rule
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> t.Iterator[tuple[FaultProxy, str]]:
    """A fault proxy before moto and an in-process registry talking to S3 through it."""
    # One retry inside boto3 (the default legacy mode would make each failing call take seconds).
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    proxy = FaultProxy(bucket.endpoint_url)
    with emulator.start(config(bucket, endpoint=proxy.url)) as server:
        yield proxy, server.url
    proxy.stop()


def assert_no_blob(bucket: Bucket, base: str, repo: str, digest: str) -> None:
    hexa = digest.split(":")[1]
    assert keys_with(bucket, hexa) == []
    assert error_code(requests.get(f"{base}/v2/{repo}/blobs/{digest}")) == "BLOB_UNKNOWN"


def test_throttled_commit_is_503_and_leaves_nothing(faulty: tuple[FaultProxy, str], bucket: Bucket) -> None:
    proxy, base = faulty
    data = os.urandom(4000)
    digest = sha256(data)
    # Every write into the blob store is throttled: the upload's final move cannot happen.
    rule = proxy.fail("PUT", "/docker/registry/v2/blobs/", status=503, code="SlowDown")
    started = requests.post(f"{base}/v2/fault/blobs/uploads/")
    answer = requests.put(started.headers["Location"], params={"digest": digest}, data=data)
    assert answer.status_code == 503
    assert error_code(answer) == "UNAVAILABLE"
    assert rule.hits >= 2  # boto3 retried once before giving up
    assert_no_blob(bucket, base, "fault", digest)
    assert keys_with(bucket, "/_uploads/") == []
    proxy.clear()
    assert Client([base]).push_blob("fault", data) == digest
    assert Client([base]).blob("fault", digest) == data


def test_s3_500_during_patch_keeps_earlier_chunks(faulty: tuple[FaultProxy, str], bucket: Bucket) -> None:
    proxy, base = faulty
    data = os.urandom(6 * MiB + 2000)
    digest = sha256(data)
    first_part = 6 * MiB
    started = requests.post(f"{base}/v2/fault/blobs/uploads/")
    patched = requests.patch(
        started.headers["Location"], data=data[:first_part], headers={"Content-Range": f"0-{first_part - 1}"}
    )
    assert patched.status_code == 202
    location = patched.headers["Location"]
    # The next append must copy the 6 MiB into a new multipart upload: S3 fails every part.
    proxy.fail("PUT", "partNumber=", status=500, code="InternalError")
    chunk = {"Content-Range": f"{first_part}-{first_part + 999}"}
    failed = requests.patch(location, data=data[first_part : first_part + 1000], headers=chunk)
    assert failed.status_code == 503
    assert error_code(failed) == "UNAVAILABLE"
    # Nothing of the failed chunk is visible, and its multipart upload was aborted.
    status = requests.get(location)
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{first_part - 1}")
    assert multipart_uploads(bucket) == []
    assert_no_blob(bucket, base, "fault", digest)
    proxy.clear()
    # The client retries the same request with the same Location, and carries on.
    retried = requests.patch(location, data=data[first_part : first_part + 1000], headers=chunk)
    assert retried.status_code == 202
    finished = requests.put(
        retried.headers["Location"], params={"digest": digest}, data=data[first_part + 1000 :]
    )
    assert finished.status_code == 201
    assert Client([base]).blob("fault", digest) == data
    assert multipart_uploads(bucket) == []


def test_throttled_reads_are_503(faulty: tuple[FaultProxy, str]) -> None:
    proxy, base = faulty
    client = Client([base])
    layer = os.urandom(2000)
    client.push_blob("reads", layer)
    client.push_blob("reads", b"{}")
    manifest = image_manifest(b"{}", [layer])
    client.push_manifest("reads", "v1", manifest)
    proxy.fail("GET", "/", status=503, code="SlowDown")
    for url in (
        f"{base}/v2/reads/manifests/v1",
        f"{base}/v2/reads/blobs/{sha256(layer)}",
        f"{base}/v2/reads/tags/list",
    ):
        answer = requests.get(url, headers={"Accept": OCI_MANIFEST})
        assert answer.status_code == 503, url
        assert error_code(answer) == "UNAVAILABLE"
    proxy.clear()
    assert client.manifest("reads", "v1").content == manifest
    assert client.blob("reads", sha256(layer)) == layer


def test_transient_throttling_is_retried_by_the_driver(faulty: tuple[FaultProxy, str]) -> None:
    proxy, base = faulty
    data = os.urandom(3000)
    rule = proxy.fail("PUT", "/", status=503, code="SlowDown", times=1)
    assert Client([base]).push_blob("transient", data) == sha256(data)
    assert rule.hits == 1
    assert Client([base]).blob("transient", sha256(data)) == data


def test_vanished_bucket_is_500_then_recovers(bucket: Bucket) -> None:
    data = os.urandom(1500)
    with emulator.start(config(bucket)) as server:
        client = Client([server.url])
        digest = client.push_blob("gone", data)
        client.push_blob("gone", b"{}")
        client.push_manifest("gone", "v1", image_manifest(b"{}", [data]))
        bucket.delete()
        for answer in (
            client.manifest("gone", "v1"),
            requests.get(f"{server.url}/v2/gone/blobs/{digest}"),
            requests.post(f"{server.url}/v2/gone/blobs/uploads/"),
            requests.get(f"{server.url}/v2/gone/tags/list"),
        ):
            assert answer.status_code == 500
            assert error_code(answer) == "UNKNOWN"
        assert requests.head(f"{server.url}/v2/gone/blobs/{digest}").status_code == 500
        # The bucket is back (empty): nothing of the failed requests shows, and pushing works again.
        bucket.client.create_bucket(Bucket=bucket.bucket)
        assert bucket.keys() == []
        fresh = os.urandom(1500)
        assert client.push_blob("gone", fresh) == sha256(fresh)
        assert client.blob("gone", sha256(fresh)) == fresh
        assert keys_with(bucket, "/_uploads/") == []


def test_repush_after_storage_lost_the_blob(bucket: Bucket) -> None:
    """The in-memory descriptor cache still knows a blob whose data storage lost (a vanished bucket, a
    garbage collection by another process). Pushing the same blob again must store it again, so the
    upload asks storage, not the cache, whether the data already exists."""
    data = os.urandom(1500)
    with emulator.start(config(bucket)) as server:
        client = Client([server.url])
        digest = client.push_blob("lost", data)
        bucket.delete()
        bucket.create()
        assert client.push_blob("lost", data) == digest
        assert client.blob("lost", digest) == data


def test_unreachable_s3_is_503(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with emulator.start(config(bucket, endpoint=f"http://127.0.0.1:{free_port()}")) as server:
        answer = requests.get(f"{server.url}/v2/any/manifests/latest")
        assert answer.status_code == 503
        assert error_code(answer) == "UNAVAILABLE"


# -- real clients and docker-registry on the same bucket -----------------------------------------------


def layout_blobs(reference: str) -> dict[str, bytes]:
    """Every blob of an ``oci:DIR:TAG`` layout, by digest."""
    layout = Path(reference.split(":")[1])
    return {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


@pytest.mark.peers
@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "no-redirect"])
def test_skopeo_round_trip(bucket: Bucket, tmp_path: Path, redirect: bool) -> None:
    from tests.clients import build_image
    from tests.clients import skopeo

    require("skopeo", "umoci")
    source = build_image(tmp_path / "src", layers=2, layer_size=7 * MiB)
    back = f"oci:{tmp_path / 'back'}:1"
    with emulator.start(config(bucket, redirect=redirect)) as server:
        remote = f"docker://{server.host}/skopeo/img:1"
        skopeo("copy", "--dest-tls-verify=false", source, remote)
        skopeo("copy", "--src-tls-verify=false", remote, back)
        pushed = skopeo("inspect", "--raw", "--tls-verify=false", remote).stdout
    assert pushed == skopeo("inspect", "--raw", source).stdout
    assert skopeo("inspect", "--raw", back).stdout == pushed
    original, returned = layout_blobs(source), layout_blobs(back)
    assert set(returned) <= set(original)
    for digest, content in returned.items():
        assert content == original[digest]
    manifest = json.loads(pushed)
    assert {layer["digest"] for layer in manifest["layers"]} <= set(returned)


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "no-redirect"])
def test_oras_round_trip(
    bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redirect: bool
) -> None:
    pytest.importorskip("oras")
    from tests.clients import oras_client

    files = {"pack.tgz": os.urandom(6 * MiB + 3), "values.yaml": b"replicas: 3\n"}
    workdir = tmp_path / "push"
    workdir.mkdir()
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    monkeypatch.chdir(workdir)
    with emulator.start(config(bucket, redirect=redirect)) as server:
        client = oras_client(server.host)
        target = f"{server.host}/packs/demo:1.0.0"
        client.push(files=list(files), target=target)
        client.pull(target=target, outdir=str(tmp_path / "pulled"))
        assert client.get_tags(f"{server.host}/packs/demo") == ["1.0.0"]
    for name, content in files.items():
        assert (tmp_path / "pulled" / name).read_bytes() == content


@pytest.mark.peers
def test_cross_compatible_with_docker_registry(bucket: Bucket, tmp_path: Path) -> None:
    """The emulator and docker-registry on one bucket and rootdirectory serve one registry: what either
    pushes, the other pulls byte for byte."""
    from pax_registry_fixtures.distribution import DistributionServer
    from tests.clients import build_image
    from tests.clients import skopeo

    require("skopeo", "umoci", "docker-registry")
    storage = {"s3": s3_section(bucket), "redirect": {"disable": True}, "delete": {"enabled": True}}
    images = {
        "to-distribution": build_image(tmp_path / "a", layers=2, layer_size=6 * MiB),
        "to-emulator": build_image(tmp_path / "b", layers=2, layer_size=300_000),
    }
    with (
        DistributionServer({"storage": storage}) as distribution,
        emulator.start(config(bucket)) as ours,
    ):
        directions = {
            "to-distribution": (ours.host, distribution.host),
            "to-emulator": (distribution.host, ours.host),
        }
        for name, (pusher, puller) in directions.items():
            source = images[name]
            skopeo("copy", "--dest-tls-verify=false", source, f"docker://{pusher}/compat/{name}:1")
            raw = skopeo(
                "inspect", "--raw", "--tls-verify=false", f"docker://{puller}/compat/{name}:1"
            ).stdout
            assert raw == skopeo("inspect", "--raw", source).stdout, name
            back = f"oci:{tmp_path / ('back-' + name)}:1"
            skopeo("copy", "--src-tls-verify=false", f"docker://{puller}/compat/{name}:1", back)
            original, returned = layout_blobs(source), layout_blobs(back)
            for digest, content in returned.items():
                assert content == original[digest], (name, digest)
            tags = requests.get(f"http://{puller}/v2/compat/{name}/tags/list").json()["tags"]
            assert tags == ["1"]
        catalog = requests.get(f"http://{distribution.host}/v2/_catalog").json()["repositories"]
        assert catalog == ["compat/to-distribution", "compat/to-emulator"]
        assert requests.get(f"{ours.url}/v2/_catalog").json()["repositories"] == catalog
    assert multipart_uploads(bucket) == []
