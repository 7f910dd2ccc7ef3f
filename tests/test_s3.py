"""The emulator on S3 storage, end to end, against real components on loopback.

moto's S3 server over HTTP (in this process), Debian's ``redis-server`` and ``docker-registry`` (child
processes), the emulator both in-process and as ``python -m emulator serve``, and skopeo and oras-py as
clients; moto, Redis and the registry client are the plugin's (``pax_s3``, ``pax_redis``,
:mod:`pax_registry_fixtures.client`). S3 faults come from the plugin's fault proxy in front of moto, which
answers chosen requests with S3's own error documents, and from deleting the bucket for real.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import logging
import os
import signal
import threading
import time
import typing as t
from pathlib import Path

import pytest
import requests

import emulator
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import RegistryError
from pax_registry_fixtures.client import request_target
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import free_port
from pax_registry_fixtures.redis import RedisServer
from pax_registry_fixtures.s3 import S3Bucket
from pax_registry_fixtures.s3 import S3FaultProxy
from pax_registry_fixtures.seeding import image_manifest
from tests.peers import require

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
QUIET = {"level": "error", "accesslog": {"disabled": True}}
SECRET = "shared-secret-for-both-processes"
#: Where the registry's files start in the bucket: ``pax_s3``'s ``rootdirectory``, without its slash.
ROOT = "registry/docker/registry/v2"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def s3_section(bucket: S3Bucket, endpoint: str | None = None) -> dict[str, t.Any]:
    return {**bucket.section, "regionendpoint": endpoint or bucket.endpoint_url}


def config(
    bucket: S3Bucket,
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


#: The tests that use ``pax_redis``: it skips without ``redis-server``; the mark fails them under CI=true.
needs_redis = pytest.mark.needs("redis-server")


def push_blob(clients: t.Sequence[Client], repo: str, data: bytes, chunks: t.Sequence[int] = ()) -> str:
    """Start an upload on the first client's registry, send ``chunks`` (sizes) as PATCHes rotating through
    the clients' registries, and close it with the rest on the first. Without chunks: POST then one PUT."""
    location = clients[0].start_upload(repo).headers["Location"]
    offset = 0
    for number, size in enumerate(chunks, 1):
        location = clients[number % len(clients)].patch(location, data[offset : offset + size], offset)
        offset += size
    return clients[0].finish_upload(location, sha256(data), data[offset:])


def error_code(answer: requests.Response) -> str:
    assert "Traceback" not in answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    return str(answer.json()["errors"][0]["code"])


def keys_with(bucket: S3Bucket, fragment: str) -> list[str]:
    return [key for key in bucket.list_keys() if fragment in key]


# -- the registry on S3, in-process ----------------------------------------------------------------------


def test_layout_is_distributions(pax_s3: S3Bucket) -> None:
    """Keys sit where distribution's s3 driver puts them, under the rootdirectory, with nothing left of
    the upload (no upload keys, no multipart upload)."""
    data = os.urandom(6 * MiB + 5)
    with emulator.start(config(pax_s3)) as server, Client(server.url) as client:
        digest = push_blob([client], "team/app", data, chunks=[MiB, 5 * MiB])
        manifest = image_manifest(b"{}", [data])
        client.push_blob("team/app", b"{}")
        manifest_digest = client.push_manifest("team/app", "v1", manifest)
    hexa, manifest_hex = digest.split(":")[1], manifest_digest.split(":")[1]
    root = ROOT
    keys = set(pax_s3.list_keys())
    assert f"{root}/blobs/sha256/{hexa[:2]}/{hexa}/data" in keys
    assert f"{root}/repositories/team/app/_layers/sha256/{hexa}/link" in keys
    assert f"{root}/repositories/team/app/_manifests/revisions/sha256/{manifest_hex}/link" in keys
    assert f"{root}/repositories/team/app/_manifests/tags/v1/current/link" in keys
    assert f"{root}/repositories/team/app/_manifests/tags/v1/index/sha256/{manifest_hex}/link" in keys
    assert not [key for key in keys if "/_uploads/" in key]
    assert all(key.startswith(f"{root}/") for key in keys)
    assert pax_s3.multipart_uploads() == []
    link = pax_s3.client.get_object(
        Bucket=pax_s3.bucket, Key=f"{root}/repositories/team/app/_layers/sha256/{hexa}/link"
    )["Body"].read()
    assert link == digest.encode()


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "no-redirect"])
def test_blob_get_and_head(pax_s3: S3Bucket, redirect: bool) -> None:
    data = os.urandom(300_000)
    with emulator.start(config(pax_s3, redirect=redirect)) as server, Client(server.url) as client:
        digest = client.push_blob("r/img", data)
        url = f"{server.url}/v2/r/img/blobs/{digest}"
        first = requests.get(url, allow_redirects=False)
        if redirect:
            assert first.status_code == 307
            location = first.headers["Location"]
            assert location.startswith(f"{pax_s3.endpoint_url}/{pax_s3.bucket}/{ROOT}/blobs/")
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


def test_chunked_upload_across_part_boundaries(pax_s3: S3Bucket) -> None:
    """PATCHes smaller and larger than a part, and a last piece in the PUT: each PATCH is a commit."""
    data = os.urandom(23 * MiB + 123)
    chunks = [3 * MiB, 4 * MiB, 1, 11 * MiB, 100]
    with emulator.start(config(pax_s3)) as server, Client(server.url) as client:
        digest = push_blob([client], "chunky", data, chunks=chunks)
        assert hashlib.sha256(client.blob("chunky", digest)).hexdigest() == digest.split(":")[1]
    assert pax_s3.multipart_uploads() == []


def test_upload_status_and_cancel(pax_s3: S3Bucket) -> None:
    with emulator.start(config(pax_s3)) as server:
        started = requests.post(f"{server.url}/v2/c/blobs/uploads/")
        location = started.headers["Location"]
        patched = requests.patch(location, data=b"x" * 1000, headers={"Content-Range": "0-999"})
        assert patched.status_code == 202
        status = requests.get(patched.headers["Location"])
        assert (status.status_code, status.headers["Range"]) == (204, "0-999")
        assert requests.delete(patched.headers["Location"]).status_code == 204
        assert error_code(requests.get(patched.headers["Location"])) == "BLOB_UPLOAD_UNKNOWN"
    assert keys_with(pax_s3, "/_uploads/") == []


def test_interrupted_upload_is_aborted_on_cancel_and_purge(pax_s3: S3Bucket) -> None:
    """A process killed mid-PATCH leaves a multipart upload with parts in S3: cancelling the upload (on
    another process) aborts it; so does purging an old upload."""
    with RegistryProcess(config(pax_s3)) as first:
        started = requests.post(f"{first.url}/v2/killed/blobs/uploads/")
        location = started.headers["Location"]
        upload_id = started.headers["Docker-Upload-UUID"]
        connection = http.client.HTTPConnection("127.0.0.1", first.port, timeout=30)
        connection.putrequest("PATCH", request_target(location))
        connection.putheader("Content-Length", str(40 * MiB))
        connection.putheader("Content-Type", "application/octet-stream")
        connection.endheaders()
        block = os.urandom(MiB)
        for _ in range(25):
            connection.send(block)
        key = f"{ROOT}/repositories/killed/_uploads/{upload_id}/data"
        deadline = time.monotonic() + 30
        while key not in pax_s3.multipart_uploads() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        connection.close()
    assert key in pax_s3.multipart_uploads()
    with emulator.start(config(pax_s3)) as second:
        assert requests.delete(second.url + request_target(location)).status_code == 204
        assert pax_s3.multipart_uploads() == []
        # An upload abandoned long ago: purging deletes its files and aborts its multipart upload.
        started = requests.post(f"{second.url}/v2/old/blobs/uploads/")
        old_key = f"{ROOT}/repositories/old/_uploads/{started.headers['Docker-Upload-UUID']}/data"
        pax_s3.client.create_multipart_upload(Bucket=pax_s3.bucket, Key=old_key)
        app = t.cast(emulator.RegistryApp, second.app)
        purged = app.registry.uploads.purge(datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
        assert len(purged) == 1
    assert pax_s3.multipart_uploads() == []
    assert keys_with(pax_s3, "/_uploads/") == []


# -- two processes, one bucket, one redis --------------------------------------------------------------


@pytest.fixture
def two_processes(
    pax_s3: S3Bucket, pax_redis: RedisServer
) -> t.Iterator[tuple[RegistryProcess, RegistryProcess]]:
    document = config(pax_s3, redirect=True, redis=pax_redis.addr)
    with RegistryProcess(document) as first, RegistryProcess(document) as second:
        yield first, second


@needs_redis
def test_upload_hops_between_processes(
    two_processes: tuple[RegistryProcess, RegistryProcess], pax_redis: RedisServer
) -> None:
    first, second = two_processes
    data = os.urandom(9 * MiB + 7)
    with Client(first.url) as one, Client(second.url) as other:
        # Started on the first, 6 MiB on the second, 1 KiB on the first, the rest in the PUT on the first.
        digest = push_blob([one, other], "hop/img", data, chunks=[6 * MiB, 1024])
        assert other.blob("hop/img", digest) == data
        assert one.blob("hop/img", digest) == data
    cache = pax_redis.client()
    assert cache.hget(f"blobs::{digest}", "size") == str(len(data))
    assert cache.sismember("repository::hop/img::blobs", digest)
    # A delete through one process is seen at once by the other: the cache is shared, not per process.
    assert requests.delete(f"{first.url}/v2/hop/img/blobs/{digest}").status_code == 202
    assert requests.head(f"{second.url}/v2/hop/img/blobs/{digest}").status_code == 404


@needs_redis
def test_tampered_and_stale_state_tokens(two_processes: tuple[RegistryProcess, RegistryProcess]) -> None:
    first, second = two_processes
    started = requests.post(f"{first.url}/v2/tamper/blobs/uploads/")
    path, _, query = request_target(started.headers["Location"]).partition("?")
    state = dict(p.split("=", 1) for p in query.split("&"))["_state"]
    forged = state[:-3] + ("AAA" if state[-3:] != "AAA" else "BBB")
    tampered = f"{second.url}{path}?_state={forged}"
    answer = requests.patch(tampered, data=b"abc", headers={"Content-Range": "0-2"})
    assert answer.status_code == 404
    assert error_code(answer) == "BLOB_UPLOAD_INVALID"
    # The genuine token still works on the other process; reusing it afterwards is stale.
    genuine = f"{path}?{query}"
    moved = requests.patch(second.url + genuine, data=b"abc", headers={"Content-Range": "0-2"})
    assert moved.status_code == 202
    stale = requests.patch(first.url + genuine, data=b"def", headers={"Content-Range": "0-2"})
    assert stale.status_code == 416
    assert error_code(stale) == "RANGE_INVALID"


@needs_redis
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

    def push_retrying(clients: list[Client], data: bytes, chunks: list[int]) -> None:
        # A registry answers 503 when its storage fails, and clients push the blob again, as docker and
        # containerd do. moto is not made for concurrent changes of one key (a key's buffer is read for
        # its ETag without the key's lock; a completed or aborted multipart upload closes its parts'
        # buffers while other requests may read them), and here eight clients store the same blobs at
        # once. What the 503s were is checked below.
        for attempt in range(3):
            try:
                push_blob(clients, "load/app", data, chunks=chunks)
                return
            except RegistryError as error:
                if error.status != 503 or attempt == 2:
                    raise

    def push(number: int) -> None:
        bases = [first.url, second.url] if number % 2 else [second.url, first.url]
        clients = [Client(base) for base in bases]
        try:
            config_blob, layers = images[number % 4]
            barrier.wait()
            push_retrying(clients, config_blob, [])
            for index, layer in enumerate(layers):
                chunks = [MiB, 5 * MiB] if len(layer) > MiB and index == 0 and number < 4 else []
                push_retrying(clients, layer, chunks)
            manifest = image_manifest(config_blob, layers)
            pushed[number] = clients[0].push_manifest("load/app", f"image{number % 4}", manifest)
            clients[0].push_manifest("load/app", f"client{number}", manifest)
        except BaseException as e:  # reported in the test thread
            failures.append(e)
        finally:
            for client in clients:
                client.close()

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    # The servers' warnings say why a request failed: an S3 error, or the driver giving up.
    logs = [process.stderr_text() for process in (first, second)]
    assert failures == [], [log[-4000:] for log in logs]
    unavailable = [line for log in logs for line in log.splitlines() if "storage unavailable" in line]
    # Only the backend may fail: the driver's own reads of a file another request changes must settle.
    assert not [line for line in unavailable if "kept changing" in line], unavailable
    for base in (first.url, second.url):
        with Client(base) as reader:
            for number in range(8):
                config_blob, layers = images[number % 4]
                expected = image_manifest(config_blob, layers)
                for tag in (f"image{number % 4}", f"client{number}", pushed[number]):
                    answer = reader.manifest("load/app", tag)
                    assert (answer.status, answer.body) == (200, expected)
                for blob in (config_blob, *layers):
                    assert reader.blob("load/app", sha256(blob)) == blob
    tags = requests.get(f"{first.url}/v2/load/app/tags/list").json()["tags"]
    assert sorted(tags) == sorted([f"image{n}" for n in range(4)] + [f"client{n}" for n in range(8)])


# -- redis outages -------------------------------------------------------------------------------------


@needs_redis
def test_redis_outage_degrades_to_no_cache(
    pax_s3: S3Bucket, pax_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    from emulator.storage import rediscache

    data = os.urandom(10_000)
    with emulator.start(config(pax_s3, redis=pax_redis.addr)) as server, Client(server.url) as client:
        digest = client.push_blob("cached", data)
        blob_url = f"{server.url}/v2/cached/blobs/{digest}"
        assert requests.head(blob_url).status_code == 200
        assert pax_redis.client().sismember("repository::cached::blobs", digest)
        # Paused, Redis accepts connections but never answers: the worst kind of outage.
        with pax_redis.paused():
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
        time.sleep(rediscache.RETRY_AFTER + 0.2)
        # ...and not served from the stale entry once Redis is back: the invalidation was replayed.
        assert requests.head(blob_url).status_code == 404
        assert not pax_redis.client().sismember("repository::cached::blobs", digest)
        assert requests.head(f"{server.url}/v2/cached/blobs/{other}").status_code == 200
        assert pax_redis.client().exists(f"blobs::{other}")


# -- S3 faults -----------------------------------------------------------------------------------------


@pytest.fixture
def faulty(pax_s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> t.Iterator[tuple[S3FaultProxy, str]]:
    """A fault proxy before moto and an in-process registry talking to S3 through it."""
    # One retry inside boto3 (the default legacy mode would make each failing call take seconds).
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with (
        S3FaultProxy(pax_s3.endpoint_url) as proxy,
        emulator.start(config(pax_s3, endpoint=proxy.endpoint_url)) as server,
    ):
        yield proxy, server.url


def assert_no_blob(bucket: S3Bucket, base: str, repo: str, digest: str) -> None:
    hexa = digest.split(":")[1]
    assert keys_with(bucket, hexa) == []
    assert error_code(requests.get(f"{base}/v2/{repo}/blobs/{digest}")) == "BLOB_UNKNOWN"


def test_the_fault_proxy_answers_with_s3_error_documents(pax_s3: S3Bucket) -> None:
    """What boto3 (the registry's S3 client) makes of an injected fault: S3's own error, by code."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    pax_s3.client.put_object(Bucket=pax_s3.bucket, Key="kept", Body=b"through the proxy")
    with S3FaultProxy(pax_s3.endpoint_url) as proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint_url,
            region_name=pax_s3.region,
            aws_access_key_id=pax_s3.access_key,
            aws_secret_access_key=pax_s3.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )
        rule = proxy.faults.fail("GET", "*/kept*", status=503, code="SlowDown", times=1)
        with pytest.raises(ClientError) as raised:
            client.get_object(Bucket=pax_s3.bucket, Key="kept")
        assert raised.value.response["Error"]["Code"] == "SlowDown"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # Spent after one use: the next request is forwarded to moto, body and all.
        assert client.get_object(Bucket=pax_s3.bucket, Key="kept")["Body"].read() == b"through the proxy"
        client.put_object(Bucket=pax_s3.bucket, Key="sent", Body=b"x" * 100_000)
        assert rule.hits == 1
        # What passed through is counted: the body sent upstream, the bytes a ranged copy names.
        assert proxy.forwarded["PUT"] == 100_000
        upload = client.create_multipart_upload(Bucket=pax_s3.bucket, Key="copy")["UploadId"]
        client.upload_part_copy(
            Bucket=pax_s3.bucket,
            Key="copy",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": pax_s3.bucket, "Key": "sent"},
            CopySourceRange="bytes=10-1009",
        )
        assert (proxy.copied, proxy.copies) == (1000, 1)
        client.abort_multipart_upload(Bucket=pax_s3.bucket, Key="copy", UploadId=upload)
    assert pax_s3.client.get_object(Bucket=pax_s3.bucket, Key="sent")["Body"].read() == b"x" * 100_000


def test_throttled_commit_is_503_and_leaves_nothing(
    faulty: tuple[S3FaultProxy, str], pax_s3: S3Bucket
) -> None:
    proxy, base = faulty
    data = os.urandom(4000)
    digest = sha256(data)
    # Every write into the blob store is throttled: the upload's final move cannot happen.
    rule = proxy.faults.fail("PUT", "*/docker/registry/v2/blobs/*", status=503, code="SlowDown", times=None)
    started = requests.post(f"{base}/v2/fault/blobs/uploads/")
    answer = requests.put(started.headers["Location"], params={"digest": digest}, data=data)
    assert answer.status_code == 503
    assert error_code(answer) == "UNAVAILABLE"
    assert rule.hits >= 2  # boto3 retried once before giving up
    assert_no_blob(pax_s3, base, "fault", digest)
    assert keys_with(pax_s3, "/_uploads/") == []
    proxy.faults.clear()
    with Client(base) as client:
        assert client.push_blob("fault", data) == digest
        assert client.blob("fault", digest) == data


def test_s3_500_during_patch_keeps_earlier_chunks(faulty: tuple[S3FaultProxy, str], pax_s3: S3Bucket) -> None:
    """A PATCH whose parts S3 refuses, then one whose commit (the upload's object) S3 refuses after its
    parts were stored: both are 503 and leave the upload as the first PATCH left it, its one multipart
    upload still open and no other; the client resumes from the same Location."""
    proxy, base = faulty
    first_part, second_part = 6 * MiB, 6 * MiB
    data = os.urandom(first_part + second_part + 2000)
    digest = sha256(data)
    started = requests.post(f"{base}/v2/fault/blobs/uploads/")
    patched = requests.patch(
        started.headers["Location"], data=data[:first_part], headers={"Content-Range": f"0-{first_part - 1}"}
    )
    assert patched.status_code == 202
    location = patched.headers["Location"]
    key = f"{ROOT}/repositories/fault/_uploads/{started.headers['Docker-Upload-UUID']}/data"
    assert pax_s3.multipart_uploads() == [key]
    chunk = data[first_part : first_part + second_part]
    headers = {"Content-Range": f"{first_part}-{first_part + second_part - 1}"}
    for failing in ("*partNumber=*", f"*/{key}"):
        proxy.faults.fail("PUT", failing, status=500, code="InternalError", times=None)
        failed = requests.patch(location, data=chunk, headers=headers)
        assert failed.status_code == 503, failing
        assert error_code(failed) == "UNAVAILABLE"
        proxy.faults.clear()
        # Nothing of the failed chunk is visible, and no other multipart upload was left behind.
        status = requests.get(location)
        assert (status.status_code, status.headers["Range"]) == (204, f"0-{first_part - 1}")
        assert pax_s3.multipart_uploads() == [key]
        assert_no_blob(pax_s3, base, "fault", digest)
    # The client retries the same request with the same Location, and carries on.
    retried = requests.patch(location, data=chunk, headers=headers)
    assert retried.status_code == 202
    finished = requests.put(
        retried.headers["Location"], params={"digest": digest}, data=data[first_part + second_part :]
    )
    assert finished.status_code == 201
    with Client(base) as client:
        assert client.blob("fault", digest) == data
    assert pax_s3.multipart_uploads() == []


def test_appends_send_each_byte_once(faulty: tuple[S3FaultProxy, str], pax_s3: S3Bucket) -> None:
    """64 MiB in 8 MiB PATCHes: while the PATCHes come in, S3 is sent each byte once and copies nothing
    inside itself (appends that re-copied the upload so far would copy 224 MiB); the final PUT then moves
    the finished upload into place with one server-side copy, as distribution does. Byte counts, through
    the fault proxy."""
    proxy, base = faulty
    size, patch = 64 * MiB, 8 * MiB
    data = os.urandom(size)
    overhead = 64 * 1024  # the upload's start time, links, its empty first object
    with Client(base) as client:
        location = client.start_upload("counted").headers["Location"]
        for offset in range(0, size, patch):
            location = client.patch(location, data[offset : offset + patch], offset)
        sent = proxy.forwarded["PUT"]
        assert size <= sent <= size + overhead
        assert (proxy.copied, proxy.copies) == (0, 0)
        digest = client.finish_upload(location, sha256(data))
        assert proxy.forwarded["PUT"] - sent <= overhead
        assert proxy.copied <= size
        assert hashlib.sha256(client.blob("counted", digest)).digest() == hashlib.sha256(data).digest()
    assert pax_s3.multipart_uploads() == []
    assert keys_with(pax_s3, "/_uploads/") == []


def test_throttled_reads_are_503(faulty: tuple[S3FaultProxy, str]) -> None:
    proxy, base = faulty
    layer = os.urandom(2000)
    manifest = image_manifest(b"{}", [layer])
    with Client(base) as client:
        client.push_blob("reads", layer)
        client.push_blob("reads", b"{}")
        client.push_manifest("reads", "v1", manifest)
        proxy.faults.fail("GET", "*", status=503, code="SlowDown", times=None)
        for url in (
            f"{base}/v2/reads/manifests/v1",
            f"{base}/v2/reads/blobs/{sha256(layer)}",
            f"{base}/v2/reads/tags/list",
        ):
            answer = requests.get(url, headers={"Accept": OCI_MANIFEST})
            assert answer.status_code == 503, url
            assert error_code(answer) == "UNAVAILABLE"
        proxy.faults.clear()
        assert client.manifest("reads", "v1").body == manifest
        assert client.blob("reads", sha256(layer)) == layer


def test_transient_throttling_is_retried_by_the_driver(faulty: tuple[S3FaultProxy, str]) -> None:
    proxy, base = faulty
    data = os.urandom(3000)
    rule = proxy.faults.fail("PUT", "*", status=503, code="SlowDown", times=1)
    with Client(base) as client:
        assert client.push_blob("transient", data) == sha256(data)
        assert rule.hits == 1
        assert client.blob("transient", sha256(data)) == data


def test_vanished_bucket_is_500_then_recovers(pax_s3: S3Bucket) -> None:
    data = os.urandom(1500)
    with emulator.start(config(pax_s3)) as server, Client(server.url) as client:
        digest = client.push_blob("gone", data)
        client.push_blob("gone", b"{}")
        client.push_manifest("gone", "v1", image_manifest(b"{}", [data]))
        pax_s3.delete()
        for answer in (
            requests.get(f"{server.url}/v2/gone/manifests/v1", headers={"Accept": OCI_MANIFEST}),
            requests.get(f"{server.url}/v2/gone/blobs/{digest}"),
            requests.post(f"{server.url}/v2/gone/blobs/uploads/"),
            requests.get(f"{server.url}/v2/gone/tags/list"),
        ):
            assert answer.status_code == 500
            assert error_code(answer) == "UNKNOWN"
        assert requests.head(f"{server.url}/v2/gone/blobs/{digest}").status_code == 500
        # The bucket is back (empty): nothing of the failed requests shows, and pushing works again.
        pax_s3.client.create_bucket(Bucket=pax_s3.bucket)
        assert pax_s3.list_keys() == []
        fresh = os.urandom(1500)
        assert client.push_blob("gone", fresh) == sha256(fresh)
        assert client.blob("gone", sha256(fresh)) == fresh
        assert keys_with(pax_s3, "/_uploads/") == []


def test_repush_after_storage_lost_the_blob(pax_s3: S3Bucket) -> None:
    """The in-memory descriptor cache still knows a blob whose data storage lost (a vanished bucket, a
    garbage collection by another process). Pushing the same blob again must store it again, so the
    upload asks storage, not the cache, whether the data already exists."""
    data = os.urandom(1500)
    with emulator.start(config(pax_s3)) as server, Client(server.url) as client:
        digest = client.push_blob("lost", data)
        pax_s3.delete()
        pax_s3.client.create_bucket(Bucket=pax_s3.bucket)
        assert client.push_blob("lost", data) == digest
        assert client.blob("lost", digest) == data


def test_unreachable_s3_is_503(pax_s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with emulator.start(config(pax_s3, endpoint=f"http://127.0.0.1:{free_port()}")) as server:
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
def test_skopeo_round_trip(pax_s3: S3Bucket, tmp_path: Path, redirect: bool) -> None:
    from tests.clients import build_image
    from tests.clients import skopeo

    require("skopeo", "umoci")
    source = build_image(tmp_path / "src", layers=2, layer_size=7 * MiB)
    back = f"oci:{tmp_path / 'back'}:1"
    with emulator.start(config(pax_s3, redirect=redirect)) as server:
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
    pax_s3: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redirect: bool
) -> None:
    pytest.importorskip("oras")
    from tests.clients import oras_client

    files = {"pack.tgz": os.urandom(6 * MiB + 3), "values.yaml": b"replicas: 3\n"}
    workdir = tmp_path / "push"
    workdir.mkdir()
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    monkeypatch.chdir(workdir)
    with emulator.start(config(pax_s3, redirect=redirect)) as server:
        client = oras_client(server.host)
        target = f"{server.host}/packs/demo:1.0.0"
        client.push(files=list(files), target=target)
        client.pull(target=target, outdir=str(tmp_path / "pulled"))
        assert client.get_tags(f"{server.host}/packs/demo") == ["1.0.0"]
    for name, content in files.items():
        assert (tmp_path / "pulled" / name).read_bytes() == content


@pytest.mark.peers
def test_cross_compatible_with_docker_registry(pax_s3: S3Bucket, tmp_path: Path) -> None:
    """The emulator and docker-registry on one bucket and rootdirectory serve one registry: what either
    pushes, the other pulls byte for byte."""
    from pax_registry_fixtures.distribution import DistributionServer
    from tests.clients import build_image
    from tests.clients import skopeo

    require("skopeo", "umoci", "docker-registry")
    storage = {"s3": s3_section(pax_s3), "redirect": {"disable": True}, "delete": {"enabled": True}}
    images = {
        "to-distribution": build_image(tmp_path / "a", layers=2, layer_size=6 * MiB),
        "to-emulator": build_image(tmp_path / "b", layers=2, layer_size=300_000),
    }
    with (
        DistributionServer({"storage": storage}) as distribution,
        emulator.start(config(pax_s3)) as ours,
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
    assert pax_s3.multipart_uploads() == []


# -- the benchmark's S3 rows ---------------------------------------------------------------------------


@pytest.mark.needs("docker-registry")
def test_the_benchmark_s3_rows(tmp_path: Path) -> None:
    """``python -m benchmarks --scenarios s3`` on a small blob: both registries push it through their s3
    drivers to one moto, and both are counted sending S3 each byte once (PATCHes of 6 MiB leave no piece
    under 5 MiB to send again), and neither copying the upload so far inside S3 on each PATCH."""
    from benchmarks import s3_appends
    from benchmarks.client import Blob
    from benchmarks.report import Results
    from benchmarks.scenarios import QUICK
    from benchmarks.servers import SIDES

    blob = Blob.create(str(tmp_path / "blob"), 12 * MiB + 5)
    results = Results({})
    s3_appends.s3_appends(results, QUICK.replace(rounds=1, chunk_size=6 * MiB), tmp_path, blob)
    rows = {row["id"]: row for row in results.rows()}
    for side in SIDES:
        assert rows["s3_push_chunked"][side] > 0
        assert 1.0 <= rows["s3_sent"][side] < 1.01, side
        # Its move is one CopyObject (below the 32 MiB copy threshold), which names no range: only the
        # settling of the emulator's last 5 bytes is a ranged copy here.
        assert rows["s3_copied"][side] < 0.01, side
    assert rows["s3_sent"]["met"] is True
