"""htpasswd authentication, with distribution's wire behaviour (``registry/auth/htpasswd``).

Only bcrypt hashes are accepted (``$2y$``, ``$2b$``, ``$2a$``). The file is re-read when it changes
on disk, and created with one random ``docker`` user when missing at start. Credentials a client sends
never reach a log line; the only password ever logged is the one generated for a missing file, because
that is how distribution tells the operator what it is.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
import typing as t
from dataclasses import dataclass

import bcrypt
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from .errors import RegistryError
from .errors import Unauthorized
from .logs import log

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .config import HtpasswdConfig

BCRYPT_PREFIXES = (b"$2y$", b"$2b$", b"$2a$")
#: Go's ``bcrypt.DefaultCost``: what distribution provisions with, and the dummy hash's cost when the
#: file has no bcrypt users to copy a cost from.
DEFAULT_COST = 10
#: bcrypt reads only this many bytes of a password. Go's compare ignores the rest; Python's bcrypt 5
#: raises instead, so the password is cut here to answer as distribution does.
MAX_PASSWORD_BYTES = 72
#: Where :meth:`HtpasswdAuthenticator.authorize` leaves the user it verified, for the access log.
USER_ENVIRON_KEY = "emulator.auth.user"


class BadRequestNoBody(RegistryError):
    """distribution answers an unreadable or malformed htpasswd file with a bare 400 and no body
    ("just return a bad request with no information")."""

    code, error_code, message = 400, "", ""

    def get_body(self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None) -> str:
        return ""

    def get_headers(
        self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None
    ) -> list[tuple[str, str]]:
        return []

    def get_response(self, environ: t.Any = None, scope: t.Any = None) -> Response:
        response = t.cast(Response, super().get_response(environ))
        # Werkzeug fills in text/plain; Go sends no Content-Type for an empty body.
        del response.headers["Content-Type"]
        return response


@dataclass(frozen=True)
class Users:
    """One reading of the file: hashes by user name, and a hash to compare unknown users against."""

    hashes: dict[bytes, bytes]
    dummy: bytes


class HtpasswdFile:
    """Users and bcrypt hashes from a file, re-read whenever it changes on disk.

    distribution watches only the modification time; size, inode and change time are compared too, so
    that two writes within one timestamp tick, or a file swapped in by rename, are still noticed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._users: Users | None = None
        self._signature: tuple[int, ...] | None = None
        self._dummies: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def load(self) -> Users:
        """The current users; raises ``OSError`` or ``ValueError`` if the file is unusable."""
        stat = os.stat(self.path)
        signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino, stat.st_dev)
        with self._lock:
            if self._users is None or signature != self._signature:
                # Forget the old reading first: a file that became malformed must not keep
                # yesterday's users logging in.
                self._users = self._signature = None
                hashes = self._parse()
                self._users = Users(hashes, self._dummy(hashes.values()))
                self._signature = signature
            return self._users

    def _parse(self) -> dict[bytes, bytes]:
        hashes: dict[bytes, bytes] = {}
        foreign: list[int] = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith(b"#"):
                    continue
                user, sep, hashed = line.partition(b":")
                if not sep:
                    # The line itself is not quoted: it may hold a password someone typed by hand.
                    raise ValueError(f"{self.path}: line {number} is not user:hash")
                if not hashed.startswith(BCRYPT_PREFIXES):
                    foreign.append(number)
                hashes[user] = hashed
        if foreign:
            lines = ", ".join(map(str, foreign))
            log.warning(
                "htpasswd file %s: only bcrypt hashes are supported; the users on line(s) %s cannot log in",
                self.path,
                lines,
            )
        return hashes

    def _dummy(self, hashes: t.Iterable[bytes]) -> bytes:
        """A hash at the cost the file's users have, so that an unknown user costs as much time as a
        known one. Made when the file is read, not on first use, so no request pays for it."""
        costs = [_cost(h) for h in hashes if h.startswith(BCRYPT_PREFIXES)]
        cost = max((c for c in costs if c is not None), default=DEFAULT_COST)
        if cost not in self._dummies:
            self._dummies[cost] = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        return self._dummies[cost]


def _cost(hashed: bytes) -> int | None:
    digits = hashed[4:6]
    return int(digits) if digits.isdigit() and 4 <= int(digits) <= 31 else None


def provision(path: str) -> None:
    """Create a missing htpasswd file with user ``docker`` and a random password, logged once."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    password = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=DEFAULT_COST, prefix=b"2a"))
    # O_EXCL: a file another process created meanwhile is theirs, not to be overwritten.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"docker:" + hashed + b"\n")
    # distribution logs the generated password: it is the only way the operator learns it.
    log.warning(
        "htpasswd is missing, provisioning with default user",
        extra={"fields": {"user": "docker", "password": password}},
    )


def basic_credentials(request: Request) -> tuple[bytes, bytes] | None:
    """User and password from ``Authorization: Basic``, parsed as Go's ``Request.BasicAuth`` does."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        # WSGI hands header values over as latin-1 text; that gives back the bytes that were sent.
        decoded = base64.b64decode(header[6:].encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def access_records(request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> t.Any:
    """What the request needs, as distribution's access records (the 401 body's ``detail``).

    ``None`` (JSON ``null``) where distribution's slice stays nil: the base route, and methods it
    does not map to an action.
    """
    name = values.get("name")
    if name is None:
        if endpoint == "catalog":
            return [{"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}]
        return None
    records = _repository_records(request.method, name)
    # distribution asks for pull on ?from= on any repository route, not only on mounts.
    source = request.args.get("from")
    if source:
        records += _repository_records("GET", source)
    return records or None


def _repository_records(method: str, name: str) -> list[dict[str, str]]:
    if method in ("GET", "HEAD"):
        actions = ["pull"]
    elif method in ("POST", "PUT", "PATCH"):
        actions = ["pull", "push"]
    elif method == "DELETE":
        actions = ["delete"]
    else:
        actions = []
    return [{"Type": "repository", "Class": "", "Name": name, "Action": a} for a in actions]


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` writes it, which is how distribution quotes the realm."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f"}
    escapes.update({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"})
    out = []
    for char in text:
        code = ord(char)
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def check_password(password: bytes, hashed: bytes) -> bool:
    """bcrypt's comparison, never raising: a broken hash is a failed login, as in Go."""
    try:
        return bcrypt.checkpw(password[:MAX_PASSWORD_BYTES], hashed)
    except ValueError:
        return False


class HtpasswdAuthenticator:
    """``auth.htpasswd``: every request to an API route needs a user and password from the file."""

    def __init__(self, config: HtpasswdConfig) -> None:
        self.realm = config.realm
        if not os.path.exists(config.path):
            provision(config.path)
        self.file = HtpasswdFile(config.path)
        # Read now so that non-bcrypt entries are warned about at start. distribution only checks
        # that the file exists, so a malformed one is reported here and answered with 400 later.
        try:
            self.file.load()
        except (OSError, ValueError) as e:
            log.error("htpasswd file unusable: %s", e)
        # Go's %q, then the UTF-8 bytes as latin-1 text: WSGI sends header values as latin-1, so the
        # client gets the same bytes distribution would send.
        self._challenge = {
            "WWW-Authenticate": f"Basic realm={go_quote(self.realm)}".encode().decode("latin-1")
        }

    def authorize(self, request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> str:
        """Return the user, or raise the 401 (or, for an unusable file, the 400) distribution answers."""
        credentials = basic_credentials(request)
        if credentials is None:
            raise self._unauthorized(request, endpoint, values)
        user, password = credentials
        try:
            users = self.file.load()
        except (OSError, ValueError) as e:
            log.error("htpasswd file unusable: %s", e)
            raise BadRequestNoBody() from None
        hashed = users.hashes.get(user)
        known = hashed is not None and hashed.startswith(BCRYPT_PREFIXES)
        # Unknown users and non-bcrypt entries are still compared, against the dummy hash, so that
        # the answer takes as long as for a known user.
        matched = check_password(password, hashed if known and hashed else users.dummy)
        if not (known and matched):
            log.debug("htpasswd authentication failed for %s %s", request.method, request.path)
            raise self._unauthorized(request, endpoint, values)
        name = user.decode("utf-8", "replace")
        request.environ[USER_ENVIRON_KEY] = name
        return name

    def _unauthorized(self, request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> Unauthorized:
        return Unauthorized(access_records(request, endpoint, values), headers=self._challenge)

    def username(self, request: Request) -> str | None:
        """The user this request was authenticated as, for the access log. Unverified names are not
        returned: a password typed into the user field must not end up in the log."""
        user = request.environ.get(USER_ENVIRON_KEY)
        return user if isinstance(user, str) else None
