"""Tags lists at scale: the filesystem driver's names, the tag store on drivers without them, and the
JSON a list is answered with (written by hand when no tag needs escaping)."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from werkzeug.test import Client

import emulator
from emulator.app import RegistryApp
from emulator.drivers.base import PathNotFound
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from emulator.handlers.tags import _body
from emulator.reference import Digest
from emulator.storage.tags import TagStore

DIGEST = Digest("sha256", "ab" * 32)


def test_filesystem_names_are_what_it_lists_without_the_directory(tmp_path: Path) -> None:
    """Temporary files (``.tmp-``, one run of the sorted names) and names no path can hold are left
    out; names sorting beside the temporary ones are kept."""
    driver = FileSystemDriver(str(tmp_path))
    kept = ["+a", "-", ".tmp", ".tmp.x", "..x..", "Z9", "a", "tag-00001", "z=z"]
    for name in kept:
        driver.put_content(f"/dir/{name}", b"x")
    for name in (".tmp-", ".tmp-half-written", "with space", "caf\u00e9"):
        (tmp_path / "dir" / name).write_bytes(b"foreign")
    assert driver.names("/dir") == sorted(kept)
    assert driver.list("/dir") == [f"/dir/{name}" for name in sorted(kept)]


def test_filesystem_names_of_a_plain_directory_keep_every_name(tmp_path: Path) -> None:
    driver = FileSystemDriver(str(tmp_path))
    names = [f"tag-{number:05d}" for number in range(300)] + ["latest", "v1.0_rc=1+b"]
    for name in names:
        driver.put_content(f"/dir/{name}", b"x")
    assert driver.names("/dir") == sorted(names)


def test_filesystem_names_of_what_is_no_directory(tmp_path: Path) -> None:
    driver = FileSystemDriver(str(tmp_path))
    assert driver.names("/") == []
    driver.put_content("/file", b"x")
    for path in ("/missing", "/file"):
        with pytest.raises(PathNotFound):
            driver.names(path)


def test_the_tag_store_lists_the_same_on_a_driver_without_names() -> None:
    """The in-memory driver lists paths only: the store cuts the directory off each."""
    store = TagStore(InMemoryDriver())
    for name in ("app", "app/nested"):
        for tag in ("b", "a", "c-1", "C"):
            store.tag(name, tag, DIGEST)
    assert store.list("app") == ["C", "a", "b", "c-1"]
    assert store.list("app/nested") == ["C", "a", "b", "c-1"]


@pytest.fixture(params=["inmemory", "filesystem"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryApp:
    storage: dict[str, t.Any] = (
        {"inmemory": {}} if request.param == "inmemory" else {"filesystem": {"rootdirectory": str(tmp_path)}}
    )
    return emulator.make_app(emulator.load_config({"storage": {**storage, "delete": {"enabled": True}}}))


@pytest.mark.parametrize("query", ["", "?n=3", "?n=3&last=tag-0004", "?n=100&last=tag-0008", "?n=0"])
def test_a_tags_list_is_the_json_text_json_dumps_writes(app: RegistryApp, query: str) -> None:
    for number in range(10):
        app.registry.tags.tag("repo", f"tag-{number:04d}", DIGEST)
    response = Client(app).get(f"/v2/repo/tags/list{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    document = json.loads(response.get_data())
    assert document["tags"] == sorted(document["tags"])
    assert response.get_data() == json.dumps(document).encode()


def test_a_repository_whose_tags_are_all_deleted_lists_null(app: RegistryApp) -> None:
    app.registry.tags.tag("repo", "v1", DIGEST)
    app.registry.tags.untag("repo", "v1")
    response = Client(app).get("/v2/repo/tags/list")
    assert response.get_data() == b'{"name": "repo", "tags": null}'


@pytest.mark.parametrize(
    "tags",
    [
        None,
        [],
        ["a", "b-1", "x.y_Z", "v=1+2"],
        ['quote"d', "plain"],
        ["back\\slash"],
        ["caf\u00e9"],
        ["control\x01"],
        ["delete\x7f"],
        ["tab\t"],
    ],
)
def test_the_body_is_json_dumps_whatever_the_tags_hold(tags: list[str] | None) -> None:
    assert _body("some/repo", tags) == json.dumps({"name": "some/repo", "tags": tags})
