"""htpasswd authentication, with distribution's wire behaviour.

Only bcrypt hashes are accepted (``$2y$``, ``$2b$``, ``$2a$``). The file is re-read when it changes
on disk, and created with one random ``docker`` user when missing at start.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
import typing as t

import bcrypt
from werkzeug.wrappers import Request

from .errors import RegistryError
from .errors import Unauthorized
from .logs import log

if t.TYPE_CHECKING:
    from .config import HtpasswdConfig

_BCRYPT_PREFIXES = (b"$2y$", b"$2b$", b"$2a$")


class BadRequestNoBody(RegistryError):
    """distribution answers an unreadable htpasswd file with a bare 400 and no information."""

    code, error_code, message = 400, "", ""

    def get_body(self, environ: t.Any = None, scope: t.Any = None) -> str:
        return ""

    def get_headers(self, environ: t.Any = None, scope: t.Any = None) -> list[tuple[str, str]]:
        return []


class HtpasswdFile:
    """Users and bcrypt hashes from a file, re-read whenever its modification time changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._users: dict[str, bytes] = {}
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def users(self) -> dict[str, bytes]:
        """The current users; raises ``OSError`` or ``ValueError`` if the file is unusable."""
        stat = os.stat(self.path)
        with self._lock:
            if stat.st_mtime_ns != self._mtime:
                self._users = self._parse()
                self._mtime = stat.st_mtime_ns
            return self._users

    def _parse(self) -> dict[str, bytes]:
        users: dict[str, bytes] = {}
        warned = False
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith(b"#"):
                    continue
                user, sep, hashed = line.partition(b":")
                if not sep:
                    raise ValueError(f"{self.path}:{number}: a line must be user:hash")
                if not hashed.startswith(_BCRYPT_PREFIXES) and not warned:
                    log.warning(
                        "htpasswd file %s has non-bcrypt hashes; those users cannot log in", self.path
                    )
                    warned = True
                users[user.decode("utf-8", "replace")] = hashed
        return users


def provision(path: str) -> None:
    """Create a missing htpasswd file with user ``docker`` and a random password, logged once."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    password = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"docker:" + hashed + b"\n")
    # distribution prints the generated password: it is the only way the operator learns it.
    log.warning(
        "htpasswd is missing, provisioning with default user",
        extra={"fields": {"user": "docker", "password": password}},
    )


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def access_records(request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> t.Any:
    """What the request needs, in distribution's access-record shape (the 401 body's ``detail``)."""
    if endpoint == "catalog":
        return [{"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}]
    name = values.get("name")
    if name is None:
        return None
    method = request.method
    if method in ("GET", "HEAD"):
        actions = ["pull"]
    elif method == "DELETE":
        actions = ["delete"]
    else:
        actions = ["pull", "push"]
    records = [{"Type": "repository", "Class": "", "Name": name, "Action": a} for a in actions]
    source = request.args.get("from")
    if endpoint == "upload_start" and request.args.get("mount") and source:
        records.append({"Type": "repository", "Class": "", "Name": source, "Action": "pull"})
    return records


class HtpasswdAuthenticator:
    def __init__(self, config: HtpasswdConfig) -> None:
        self.realm = config.realm
        if not os.path.exists(config.path):
            provision(config.path)
        self.file = HtpasswdFile(config.path)
        self._dummy_hashes: dict[bytes, bytes] = {}

    def challenge(self) -> dict[str, str]:
        escaped = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        return {"WWW-Authenticate": f'Basic realm="{escaped}"'}

    def authorize(self, request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> str:
        """Return the user, or raise the 401 distribution answers with."""
        credentials = basic_credentials(request)
        if credentials is None:
            raise Unauthorized(access_records(request, endpoint, values), headers=self.challenge())
        user, password = credentials
        try:
            users = self.file.users()
        except (OSError, ValueError) as e:
            log.error("htpasswd file unusable: %s", e)
            raise BadRequestNoBody() from None
        hashed = users.get(user)
        if hashed is not None and not hashed.startswith(_BCRYPT_PREFIXES):
            hashed = None  # other hash kinds never match
        matched = bcrypt.checkpw(password.encode(), hashed or self._dummy_hash(users))
        if hashed is None or not matched:
            raise Unauthorized(access_records(request, endpoint, values), headers=self.challenge())
        return user

    def _dummy_hash(self, users: t.Mapping[str, bytes]) -> bytes:
        """A hash to compare against for unknown users, at the cost the file's users have, so that
        an unknown user takes as long as a known one. Made on first need: bcrypt is slow."""
        costs = [h[4:6] for h in users.values() if h.startswith(_BCRYPT_PREFIXES) and h[4:6].isdigit()]
        cost = max(costs, default=b"10")
        if cost not in self._dummy_hashes:
            self._dummy_hashes[cost] = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=int(cost)))
        return self._dummy_hashes[cost]

    def username(self, request: Request) -> str | None:
        credentials = basic_credentials(request)
        return credentials[0] if credentials else None
