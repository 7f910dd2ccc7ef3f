"""htpasswd authentication, with distribution's wire behaviour (``registry/auth/htpasswd``).

Only bcrypt hashes are accepted (``$2y$``, ``$2b$``, ``$2a$``). The file is re-read when it changes
on disk, and created with one random ``docker`` user when missing at start. Credentials a client sends
never reach a log line; the only password ever logged is the one generated for a missing file, because
that is how distribution tells the operator what it is.

A bcrypt comparison takes milliseconds of CPU by design. It never runs while the request holds the
server's turn (:func:`emulator.turns.leave_turn` is called just before),
and a successful one is remembered for :data:`VERIFIED_TTL_SECONDS`, so a client sending the same
credentials on every request (every client does) pays for one comparison a minute, not one per request.
The trade-off: a password that verified is accepted without bcrypt for that long, but only while the
file is unchanged. Every request still checks the file, and any change to it forgets every remembered
verification, so a password removed from the file or changed stops working at the next request, as
without the cache. Entries are keyed by a keyed hash (HMAC, with a random key that lives only in this
process) of the user, the password and the stored hash: the password itself is never kept. A failed
password is never remembered: each failure costs a full comparison, an unknown user's too (against a
dummy hash of the file's cost), so failures take as long as before and guessing gains nothing.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import os
import secrets
import threading
import time
import typing as t
from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import field

import bcrypt
from werkzeug.wrappers import Request

from .errors import BadRequestNoBody
from .errors import Unauthorized
from .logs import log
from .turns import leave_turn

if t.TYPE_CHECKING:
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
#: Where a server with turns puts a callable that gives up the request's turn (absent otherwise).
#: How long a successful verification is remembered.
VERIFIED_TTL_SECONDS = 60.0
#: How many successful verifications are remembered at most (the oldest go first).
VERIFIED_MAX_ENTRIES = 4096
#: The characters of bcrypt's base64, which a hash's salt and checksum are written in.
_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class VerifiedPasswords:
    """Successful verifications, each remembered for ``ttl`` seconds, at most ``max_entries`` of them.

    Only a keyed hash of (user, password, stored hash) is kept, never the password: the key is random
    and lives only in this object, so what is kept cannot be checked against guesses elsewhere, and a
    changed hash simply misses.
    """

    def __init__(
        self,
        ttl: float = VERIFIED_TTL_SECONDS,
        max_entries: int = VERIFIED_MAX_ENTRIES,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._key = secrets.token_bytes(32)
        # Keys in the order they expire (every entry lives ``ttl``), so the first is the next to go.
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _entry(self, user: bytes, password: bytes, hashed: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user, password, hashed):
            # Length-prefixed, so that no two different triples hash the same bytes.
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()

    def verified(self, user: bytes, password: bytes, hashed: bytes) -> bool:
        """Whether this password was verified against ``hashed`` less than ``ttl`` seconds ago."""
        entry = self._entry(user, password, hashed)
        now = self.clock()
        with self._lock:
            self._forget_expired(now)
            return entry in self._expiry

    def remember(self, user: bytes, password: bytes, hashed: bytes) -> None:
        """Remember that ``password`` matched ``hashed``; only ever called after bcrypt said so."""
        entry = self._entry(user, password, hashed)
        now = self.clock()
        with self._lock:
            self._forget_expired(now)
            self._expiry.pop(entry, None)
            self._expiry[entry] = now + self.ttl
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        while self._expiry:
            entry, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[entry]


@dataclass(frozen=True)
class Users:
    """One reading of the file: hashes by user name, a hash to compare unknown users against, and the
    verifications made against this reading (a new reading starts with none)."""

    hashes: dict[bytes, bytes]
    dummy: bytes
    verified: VerifiedPasswords = field(default_factory=VerifiedPasswords, compare=False)


class HtpasswdFile:
    """Users and bcrypt hashes from a file, re-read whenever it changes on disk.

    distribution watches only the modification time; size, inode and change time are compared too, so
    that two writes within one timestamp tick, or a file swapped in by rename, are still noticed.

    No lock is held while the file is read: requests that see a change at the same moment may each
    read it, and the last to finish is kept. A reading kept with a signature older than the file's is
    simply read again by the next request, so the kept reading always catches up with the file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._current: tuple[tuple[int, ...], Users] | None = None

    def load(self) -> Users:
        """The current users; raises ``OSError`` or ``ValueError`` if the file is unusable."""
        stat = os.stat(self.path)
        signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino, stat.st_dev)
        current = self._current
        if current is not None and current[0] == signature:
            return current[1]
        # Forget the old reading first: a file that became malformed must not keep yesterday's users
        # logging in.
        self._current = None
        hashes = self._parse()
        users = Users(hashes, _dummy_hash(hashes.values()))
        self._current = (signature, users)
        return users

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
                    raise ValueError(f"line {number} is not user:hash")
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


def _dummy_hash(hashes: t.Iterable[bytes]) -> bytes:
    """A hash at the cost the file's users have, so that an unknown user costs as much time as a known
    one. Its salt is real and its checksum random, so no password matches it, and making it takes no
    bcrypt computation (which reading the file must never do: it may happen in a request's turn)."""
    costs = [_cost(h) for h in hashes if h.startswith(BCRYPT_PREFIXES)]
    cost = max((c for c in costs if c is not None), default=DEFAULT_COST)
    return bcrypt.gensalt(rounds=cost) + bytes(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))


def _cost(hashed: bytes) -> int | None:
    digits = hashed[4:6]
    return int(digits) if digits.isdigit() and 4 <= int(digits) <= 31 else None


class HtpasswdUnusable(Exception):
    """The htpasswd file cannot be used at start; ``str(error)`` is one line, ``'<path>: <problem>'``.

    distribution starts anyway and answers every request that has credentials with a bare 400; the
    emulator refuses to start instead, so the mistake is seen once, where it is made.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _os_problem(error: OSError) -> str:
    return error.strerror or str(error)


def check_file(file: HtpasswdFile) -> None:
    """Read *file* as the server starts to; :raises HtpasswdUnusable: it cannot be used."""
    try:
        file.load()
    except OSError as e:
        raise HtpasswdUnusable(file.path, f"cannot read it: {_os_problem(e)}") from None
    except ValueError as e:
        raise HtpasswdUnusable(file.path, f"not an htpasswd file: {e}") from None


def provision(path: str) -> None:
    """Create a missing htpasswd file with user ``docker`` and a random password, logged once."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        # makedirs would say "File exists", as if the htpasswd file were there.
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
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
        if not os.path.lexists(config.path):
            try:
                provision(config.path)
            except OSError as e:
                raise HtpasswdUnusable(config.path, f"cannot create it: {_os_problem(e)}") from None
        self.file = HtpasswdFile(config.path)
        # Read now, so that a file that cannot be used stops the start and non-bcrypt entries are
        # warned about once. A file that breaks later is answered as distribution answers it: 400 with
        # no body.
        check_file(self.file)
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
            log.error("htpasswd file %s unusable: %s", self.file.path, e)
            raise BadRequestNoBody() from None
        hashed = users.hashes.get(user)
        if hashed is None or not hashed.startswith(BCRYPT_PREFIXES):
            # Unknown users and non-bcrypt entries are still compared, against the dummy hash, so
            # that the answer takes as long as for a known user.
            leave_turn(request.environ)
            check_password(password, users.dummy)
            matched = False
        else:
            matched = self._matches(request, users, user, password, hashed)
        if not matched:
            log.debug("htpasswd authentication failed for %s %s", request.method, request.path)
            raise self._unauthorized(request, endpoint, values)
        name = user.decode("utf-8", "replace")
        request.environ[USER_ENVIRON_KEY] = name
        return name

    def _matches(self, request: Request, users: Users, user: bytes, password: bytes, hashed: bytes) -> bool:
        if users.verified.verified(user, password, hashed):
            return True
        leave_turn(request.environ)  # bcrypt takes milliseconds, and releases the interpreter lock
        if not check_password(password, hashed):
            return False
        users.verified.remember(user, password, hashed)
        return True

    def _unauthorized(self, request: Request, endpoint: str, values: t.Mapping[str, t.Any]) -> Unauthorized:
        return Unauthorized(access_records(request, endpoint, values), headers=self._challenge)

    def username(self, request: Request) -> str | None:
        """The user this request was authenticated as, for the access log. Unverified names are not
        returned: a password typed into the user field must not end up in the log."""
        user = request.environ.get(USER_ENVIRON_KEY)
        return user if isinstance(user, str) else None
