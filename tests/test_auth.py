"""htpasswd authentication: the file, the 401 distribution answers on every API route, reloads,
provisioning of a missing file, and credentials kept out of the logs."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from werkzeug.test import Client

import emulator
import emulator.auth
from emulator.app import RegistryApp
from emulator.auth import VERIFIED_TTL_SECONDS
from emulator.auth import HtpasswdAuthenticator
from emulator.auth import HtpasswdFile
from emulator.auth import HtpasswdUnusable
from emulator.auth import Users
from emulator.auth import VerifiedPasswords
from emulator.auth import go_quote
from emulator.turns import LEAVE_TURN
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ

REALM = "Test Realm"
#: Cost 4 keeps the suite fast; the cost does not change any behaviour under test.
FAST = 4
DIGEST = "sha256:" + "a" * 64
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


def hashed(password: str, *, prefix: bytes = b"2b", rounds: int = FAST) -> str:
    # Python's bcrypt writes only $2a$ and $2b$; $2y$ (PHP's, and `htpasswd -B`'s) is the same algorithm.
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds, prefix=b"2b")).decode()
    return f"${prefix.decode()}${made[4:]}"


def write_users(path: Path, users: t.Mapping[str, str], *, extra: str = "") -> Path:
    path.write_text(extra + "".join(f"{user}:{hashed(pw)}\n" for user, pw in users.items()))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def make_client(path: Path, **http: t.Any) -> Client:
    config = emulator.load_config(
        {"auth": {"htpasswd": {"realm": REALM, "path": str(path)}}, **({"http": http} if http else {})}
    )
    return Client(emulator.make_app(config))


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return write_users(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
def client(htpasswd: Path) -> Client:
    return make_client(htpasswd, headers={"X-Test": ["yes"]})


class Records(logging.Handler):
    """Records of the ``emulator`` logger, whatever another test did to propagation."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def records() -> t.Iterator[Records]:
    logger = logging.getLogger("emulator")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- the file ----------------------------------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n\n   \nalice:{hashed('a')}\n  # indented comment\r\nbob:{hashed('b')}\r\n")
    assert sorted(HtpasswdFile(str(path)).load().hashes) == [b"alice", b"bob"]


@pytest.mark.parametrize("prefix", [b"2a", b"2b", b"2y"])
def test_every_bcrypt_prefix_logs_in(tmp_path: Path, prefix: bytes) -> None:
    hash_ = hashed("pw", prefix=prefix)
    assert hash_.startswith(f"${prefix.decode()}$")
    (tmp_path / "htpasswd").write_text(f"carol:{hash_}\n")
    client = make_client(tmp_path / "htpasswd")
    assert client.get("/v2/", headers=basic("carol", "pw")).status_code == 200
    assert client.get("/v2/", headers=basic("carol", "wrong")).status_code == 401


def test_non_bcrypt_hashes_never_match_and_are_warned_about_once(tmp_path: Path, records: Records) -> None:
    path = tmp_path / "htpasswd"
    # Apache MD5, SHA1 and plain text (what `htpasswd -m`, `-s` and `-p` write).
    path.write_text(
        "md5:$apr1$7uS2gY5N$5tDQzD1Uk7JbWmCk1q2fI0\n"
        "sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
        f"plain:password\nalice:{hashed('wonderland')}\n"
    )
    client = make_client(path)
    warnings = [m for m in records.messages(logging.WARNING) if "bcrypt" in m]
    assert len(warnings) == 1, warnings
    assert "line(s) 1, 2, 3" in warnings[0]
    assert "password" not in warnings[0] and "$apr1$" not in warnings[0]
    for user, password in [("md5", "password"), ("sha", "password"), ("plain", "password")]:
        assert client.get("/v2/", headers=basic(user, password)).status_code == 401
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    # Requests do not warn again: the file has not changed.
    assert len([m for m in records.messages(logging.WARNING) if "bcrypt" in m]) == 1


@pytest.mark.peers
@pytest.mark.needs("htpasswd")
def test_hashes_from_apache_htpasswd_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(path), "dave", "s3cret pass"], check=True, capture_output=True)
    subprocess.run(
        ["htpasswd", "-Bb", "-C", "5", str(path), "erin", "other"], check=True, capture_output=True
    )
    assert path.read_text().count("$2y$") == 2
    client = make_client(path)
    assert client.get("/v2/", headers=basic("dave", "s3cret pass")).status_code == 200
    assert client.get("/v2/", headers=basic("erin", "other")).status_code == 200
    assert client.get("/v2/", headers=basic("dave", "other")).status_code == 401


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: path.mkdir(), "cannot read it: Is a directory"),
        (
            lambda path: path.write_bytes(b"\x00garbage\xff\n"),
            "not an htpasswd file: line 1 is not user:hash",
        ),
        (lambda path: path.symlink_to(path.parent / "nowhere"), "cannot read it: No such file or directory"),
    ],
    ids=["directory", "garbage", "dangling-link"],
)
def test_unusable_file_stops_the_start(
    tmp_path: Path, make: t.Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "htpasswd"
    make(path)
    with pytest.raises(HtpasswdUnusable) as info:
        make_client(path)
    assert str(info.value) == f"{path}: {problem}"
    assert not (tmp_path / "nowhere").exists()


def test_unreadable_file_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_users(tmp_path / "htpasswd", {"alice": "wonderland"})

    def refused(file: object, *args: object, **kwargs: object) -> t.NoReturn:
        # Mode 000 does not stop root, which the tests may run as: the refusal is simulated.
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(emulator.auth, "open", refused, raising=False)
    with pytest.raises(HtpasswdUnusable) as info:
        make_client(path)
    assert str(info.value) == f"{path}: cannot read it: Permission denied"


def test_file_that_cannot_be_provisioned_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "htpasswd"
    with pytest.raises(HtpasswdUnusable) as info:
        make_client(path)
    assert str(info.value) == f"{path}: cannot create it: Not a directory"


def test_file_that_becomes_malformed_answers_400_with_an_empty_body(tmp_path: Path) -> None:
    path = write_users(tmp_path / "htpasswd", {"alice": "wonderland"})
    client = make_client(path, headers={"X-Test": ["yes"]})
    write_users(path, {"alice": "wonderland"}, extra="this line has no colon\n")
    response = client.get("/v2/", headers=basic("alice", "wonderland"))
    assert response.status_code == 400
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert response.headers[API_VERSION[0]] == API_VERSION[1]
    assert response.headers["X-Test"] == "yes"
    # Without credentials the file is not read: the usual challenge.
    assert client.get("/v2/").status_code == 401


def test_file_removed_while_running_answers_400(htpasswd: Path, client: Client) -> None:
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    htpasswd.unlink()
    response = client.get("/v2/", headers=basic("alice", "wonderland"))
    assert (response.status_code, response.get_data()) == (400, b"")


# -- the challenge -----------------------------------------------------------------------------------

ROUTES: list[tuple[str, str, t.Any]] = [
    ("GET", "/v2/", None),
    ("GET", "/v2/_catalog", [{"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}]),
    ("GET", "/v2/team/app/tags/list", [("team/app", "pull")]),
    ("GET", "/v2/team/app/manifests/latest", [("team/app", "pull")]),
    ("HEAD", "/v2/team/app/manifests/latest", [("team/app", "pull")]),
    ("PUT", "/v2/team/app/manifests/latest", [("team/app", "pull"), ("team/app", "push")]),
    ("DELETE", f"/v2/team/app/manifests/{DIGEST}", [("team/app", "delete")]),
    ("GET", f"/v2/team/app/blobs/{DIGEST}", [("team/app", "pull")]),
    ("DELETE", f"/v2/team/app/blobs/{DIGEST}", [("team/app", "delete")]),
    ("POST", "/v2/team/app/blobs/uploads/", [("team/app", "pull"), ("team/app", "push")]),
    (
        "POST",
        f"/v2/team/app/blobs/uploads/?mount={DIGEST}&from=other/src",
        [("team/app", "pull"), ("team/app", "push"), ("other/src", "pull")],
    ),
    ("PATCH", "/v2/team/app/blobs/uploads/some-id", [("team/app", "pull"), ("team/app", "push")]),
    (
        "PUT",
        f"/v2/team/app/blobs/uploads/some-id?digest={DIGEST}",
        [("team/app", "pull"), ("team/app", "push")],
    ),
    ("GET", "/v2/team/app/blobs/uploads/some-id", [("team/app", "pull")]),
]


def expected_detail(detail: t.Any) -> t.Any:
    if detail is None or isinstance(detail[0], dict):
        return detail
    return [{"Type": "repository", "Class": "", "Name": name, "Action": action} for name, action in detail]


@pytest.mark.parametrize("credentials", ["none", "wrong-password", "unknown-user", "not-basic"])
@pytest.mark.parametrize(("method", "path", "detail"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_api_route_challenges(
    client: Client, method: str, path: str, detail: t.Any, credentials: str
) -> None:
    headers = {
        "none": {},
        "wrong-password": basic("alice", "wrong"),
        "unknown-user": basic("mallory", "wonderland"),
        "not-basic": {"Authorization": "Bearer abc"},
    }[credentials]
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{REALM}"'
    assert response.headers[API_VERSION[0]] == API_VERSION[1]
    assert response.headers["X-Test"] == "yes"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    if method != "HEAD":
        body = response.get_data()
        assert body.endswith(b"\n")
        assert json.loads(body) == {
            "errors": [
                {
                    "code": "UNAUTHORIZED",
                    "message": "authentication required",
                    "detail": expected_detail(detail),
                }
            ]
        }


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("DELETE", "/v2/_catalog", [{"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}]),
        ("POST", "/v2/team/app/tags/list", [("team/app", "pull"), ("team/app", "push")]),
        ("OPTIONS", "/v2/team/app/manifests/latest", None),
    ],
)
def test_unsupported_methods_are_challenged_before_405(
    client: Client, method: str, path: str, detail: t.Any
) -> None:
    # distribution authenticates first (observed on docker-registry 2.8.2).
    response = client.open(path, method=method)
    assert response.status_code == 401
    assert json.loads(response.get_data())["errors"][0]["detail"] == expected_detail(detail)
    assert client.open(path, method=method, headers=basic("alice", "wonderland")).status_code == 405


def test_base_route_detail_is_null_not_missing(client: Client) -> None:
    assert b'"detail": null' in client.get("/v2/").get_data()


def test_right_credentials_open_the_base_route(client: Client) -> None:
    response = client.get("/v2/", headers=basic("bob", "builder"))
    assert response.status_code == 200
    assert response.get_data() == b"{}"
    assert response.headers["Content-Length"] == "2"
    assert response.headers[API_VERSION[0]] == API_VERSION[1]
    assert "WWW-Authenticate" not in response.headers


def test_right_credentials_reach_the_handlers(client: Client) -> None:
    response = client.get("/v2/team/app/tags/list", headers=basic("alice", "wonderland"))
    assert response.status_code == 404
    assert json.loads(response.get_data())["errors"][0]["code"] == "NAME_UNKNOWN"


def test_health_and_root_stay_open(client: Client) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200


def test_realm_is_quoted_as_go_does(tmp_path: Path) -> None:
    assert go_quote('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert go_quote("tab\tnew\nline\x01") == '"tab\\tnew\\nline\\x01"'
    assert go_quote("Réalm ☃") == '"Réalm ☃"'
    assert go_quote("\u200b") == '"\\u200b"'
    config = emulator.load_config(
        {"auth": {"htpasswd": {"realm": 'My "Realm" ☃', "path": str(tmp_path / "h")}}}
    )
    response = Client(emulator.make_app(config)).get("/v2/")
    # WSGI carries header values as latin-1 text: these are the UTF-8 bytes Go would send.
    raw = response.headers["WWW-Authenticate"].encode("latin-1")
    assert raw == 'Basic realm="My \\"Realm\\" ☃"'.encode()


def test_password_longer_than_bcrypt_reads(tmp_path: Path) -> None:
    long = "x" * 72
    (tmp_path / "htpasswd").write_text(f"long:{hashed(long)}\n")
    client = make_client(tmp_path / "htpasswd")
    # Go's bcrypt reads 72 bytes and ignores the rest; Python's bcrypt 5 would raise (a 500).
    assert client.get("/v2/", headers=basic("long", long + "ignored")).status_code == 200
    assert client.get("/v2/", headers=basic("long", "y" * 100)).status_code == 401


def test_broken_bcrypt_hash_is_a_failed_login(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text("broken:$2y$10$tooshort\n")
    assert make_client(tmp_path / "htpasswd").get("/v2/", headers=basic("broken", "x")).status_code == 401


def test_unknown_users_cost_a_bcrypt_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed('wonderland', rounds=5)}\nmd5:$apr1$7uS2gY5N$5tDQzD1Uk7JbWmCk1q2fI0\n")
    client = make_client(path)
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed_password: bytes) -> bool:
        calls.append(hashed_password)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    for user in ("alice", "mallory", "md5"):
        assert client.get("/v2/", headers=basic(user, "nope")).status_code == 401
    assert len(calls) == 3
    known, unknown, non_bcrypt = calls
    # The dummy hash has the cost of the file's users, so it costs as much time as a real one.
    assert known.startswith(b"$2b$05$")
    assert unknown.startswith(b"$2b$05$") and unknown != known
    assert non_bcrypt == unknown


def test_no_credentials_means_no_comparison(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bcrypt, "checkpw", pytest.fail)
    assert client.get("/v2/").status_code == 401


# -- changes on disk ---------------------------------------------------------------------------------


def test_file_changes_take_effect_on_the_next_request(htpasswd: Path, client: Client) -> None:
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert client.get("/v2/", headers=basic("frank", "new")).status_code == 401
    # Rewritten in place, as an editor or `htpasswd` would.
    write_users(htpasswd, {"frank": "new"})
    assert client.get("/v2/", headers=basic("frank", "new")).status_code == 200
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 401
    # Swapped in by rename (a new inode), as configuration management tools do.
    replacement = write_users(htpasswd.with_name("next"), {"grace": "hopper"})
    os.replace(replacement, htpasswd)
    assert client.get("/v2/", headers=basic("grace", "hopper")).status_code == 200
    assert client.get("/v2/", headers=basic("frank", "new")).status_code == 401


def test_a_file_that_becomes_malformed_does_not_keep_old_users(htpasswd: Path, client: Client) -> None:
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    htpasswd.write_text(htpasswd.read_text() + "broken line\n")
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 400
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 400


# -- remembered verifications and the server's turn --------------------------------------------------


class Comparisons:
    """Counts bcrypt comparisons, and notes whether the server's turn had been given up before each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashes: list[bytes] = []
        self.left_turn: list[bool] = []
        self.turns_left = 0
        real = bcrypt.checkpw

        def counting(password: bytes, hashed_password: bytes) -> bool:
            self.hashes.append(hashed_password)
            self.left_turn.append(self.turns_left == len(self.hashes))
            return real(password, hashed_password)

        monkeypatch.setattr(bcrypt, "checkpw", counting)

    def leave_turn(self) -> None:
        self.turns_left += 1

    def __len__(self) -> int:
        return len(self.hashes)


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> Comparisons:
    return Comparisons(monkeypatch)


def current_users(client: Client) -> Users:
    app = client.application
    assert isinstance(app, RegistryApp) and isinstance(app.authenticator, HtpasswdAuthenticator)
    return app.authenticator.file.load()


def test_a_verified_password_is_remembered(client: Client, comparisons: Comparisons) -> None:
    for _ in range(3):
        assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(comparisons) == 1
    # Each user's password is verified once.
    assert client.get("/v2/", headers=basic("bob", "builder")).status_code == 200
    assert len(comparisons) == 2


def test_a_wrong_password_after_a_remembered_one_still_fails(
    client: Client, comparisons: Comparisons
) -> None:
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    for _ in range(2):
        assert client.get("/v2/", headers=basic("alice", "wonderlan")).status_code == 401
    # Failures are never remembered: each one costs a comparison, as an unknown user's does.
    assert client.get("/v2/", headers=basic("mallory", "wonderland")).status_code == 401
    assert len(comparisons) == 4
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(comparisons) == 4


def test_remembered_verifications_expire(client: Client, comparisons: Comparisons) -> None:
    now = [1000.0]
    current_users(client).verified.clock = lambda: now[0]
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    now[0] += VERIFIED_TTL_SECONDS - 1
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(comparisons) == 1
    now[0] += 2
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(comparisons) == 2


def test_a_changed_file_forgets_every_verification(
    htpasswd: Path, client: Client, comparisons: Comparisons
) -> None:
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(current_users(client).verified) == 1
    # The same users written again (with a comment, so that even the size changes): nothing that was
    # verified is trusted without a new comparison.
    htpasswd.write_text(htpasswd.read_text() + "# rewritten\n")
    assert len(current_users(client).verified) == 0
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 200
    assert len(comparisons) == 2
    # A password changed in the file stops working at the next request.
    write_users(htpasswd, {"alice": "looking-glass", "bob": "builder"})
    assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 401
    assert client.get("/v2/", headers=basic("alice", "looking-glass")).status_code == 200


def test_no_password_is_kept_in_memory(tmp_path: Path) -> None:
    password = "a-distinctive-password-0123456789"
    client = make_client(write_users(tmp_path / "htpasswd", {"carol": password}))
    assert client.get("/v2/", headers=basic("carol", password)).status_code == 200
    verified = current_users(client).verified
    assert len(verified) == 1
    kept = repr(vars(verified)).encode() + b"".join(verified._expiry)
    for secret in (password.encode(), password[:16].encode(), password.encode().hex().encode()):
        assert secret not in kept


def test_verified_passwords_are_bounded() -> None:
    verified = VerifiedPasswords(max_entries=2)
    for user in (b"a", b"b", b"c"):
        verified.remember(user, b"pw", b"$2b$04$hash")
    assert len(verified) == 2
    assert not verified.verified(b"a", b"pw", b"$2b$04$hash")  # the oldest went first
    assert verified.verified(b"c", b"pw", b"$2b$04$hash")
    assert not verified.verified(b"c", b"pw", b"$2b$04$other")  # another hash is another entry
    assert not verified.verified(b"c", b"other", b"$2b$04$hash")


def test_every_comparison_runs_after_the_turn_is_given_up(client: Client, comparisons: Comparisons) -> None:
    turn = {LEAVE_TURN: comparisons.leave_turn}
    attempts = [("alice", "wonderland", 200), ("alice", "wrong", 401), ("nobody", "x", 401)]
    for user, password, status in attempts:
        assert client.get("/v2/", headers=basic(user, password), environ_overrides=turn).status_code == status
    assert comparisons.left_turn == [True, True, True]
    # A remembered verification needs no comparison, so the request keeps its turn.
    assert client.get("/v2/", headers=basic("alice", "wonderland"), environ_overrides=turn).status_code == 200
    assert comparisons.turns_left == 3
    # Without turns (no callable in the environ) comparisons still happen.
    assert client.get("/v2/", headers=basic("bob", "builder")).status_code == 200
    assert len(comparisons) == 4


def test_reading_the_file_costs_no_bcrypt_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_users(tmp_path / "htpasswd", {"alice": "wonderland"})
    monkeypatch.setattr(bcrypt, "hashpw", pytest.fail)
    monkeypatch.setattr(bcrypt, "checkpw", pytest.fail)
    users = HtpasswdFile(str(path)).load()
    # The dummy has the users' cost and a well-formed salt, so comparing with it costs a real bcrypt.
    assert users.dummy.startswith(f"$2b${FAST:02d}$".encode()) and len(users.dummy) == 60
    monkeypatch.undo()
    assert not bcrypt.checkpw(b"anything", users.dummy)


# -- provisioning ------------------------------------------------------------------------------------


def test_missing_file_is_provisioned_with_a_random_docker_user(tmp_path: Path, records: Records) -> None:
    path = tmp_path / "new" / "auth" / "htpasswd"
    client = make_client(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("docker:$2a$10$")
    provisioned = [r for r in records.records if "provisioning with default user" in r.getMessage()]
    assert len(provisioned) == 1
    fields = provisioned[0].fields  # type: ignore[attr-defined]
    assert fields["user"] == "docker"
    password = fields["password"]
    assert len(password) == 43  # 32 random bytes, base64url without padding, as distribution
    assert client.get("/v2/", headers=basic("docker", password)).status_code == 200
    # An existing file is left alone on the next start.
    before = path.read_bytes()
    make_client(path)
    assert path.read_bytes() == before
    assert len([r for r in records.records if "provisioning" in r.getMessage()]) == 1


# -- the real process: logs and configuration errors -------------------------------------------------


def test_credentials_never_reach_the_logs(tmp_path: Path) -> None:
    password = "S3cr3t-Pa55word"
    wrong = "Wr0ng-Pa55word"
    path = write_users(tmp_path / "htpasswd", {"alice": password})
    config = {
        "log": {"level": "debug", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {"inmemory": {}},
        "auth": {"htpasswd": {"realm": REALM, "path": str(path)}},
    }
    secrets = [password, wrong, "typed-into-user"]
    with RegistryProcess(config) as registry:
        session = requests.Session()
        session.trust_env = False
        attempts = [("alice", password), ("alice", wrong), ("mallory", wrong), ("typed-into-user", "")]
        statuses = [session.get(f"{registry.url}/v2/", auth=a, timeout=30).status_code for a in attempts]
        assert statuses == [200, 401, 401, 401]
        assert (
            session.get(f"{registry.url}/v2/x/tags/list", auth=("alice", password), timeout=30).status_code
            == 404
        )
    logs = registry.stdout_text() + registry.stderr_text()
    assert "GET /v2/ HTTP/1.1" in registry.stdout_text()  # the access log was on
    for user, pw in attempts:
        secrets.append(base64.b64encode(f"{user}:{pw}".encode()).decode())
    for secret in secrets:
        assert secret not in logs, f"{secret!r} found in the logs"
    # The verified user may appear in the access log; unverified names never do.
    assert "mallory" not in logs


def run_serve(config: t.Mapping[str, t.Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", **config}))
    return subprocess.run(
        [sys.executable, "-m", "emulator", "serve", str(path)],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("missing", ["realm", "path"])
def test_missing_realm_or_path_is_a_configuration_error(tmp_path: Path, missing: str) -> None:
    htpasswd = {"realm": REALM, "path": str(tmp_path / "htpasswd")}
    del htpasswd[missing]
    result = run_serve({"storage": {"inmemory": {}}, "auth": {"htpasswd": htpasswd}}, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert f"auth.htpasswd.{missing}" in lines[0]
    assert not (tmp_path / "htpasswd").exists()
