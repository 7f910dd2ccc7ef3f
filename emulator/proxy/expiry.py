"""When cached content expires: distribution's TTL scheduler, with its state file.

Each blob and manifest the cache fetched has an entry ``"<repo>@<digest>"`` due ``proxy.ttl`` after the
fetch. The schedule is kept in ``scheduler-state.json`` at the storage root, in distribution 2.8's shape
(``{"<key>": {"Key", "ExpiryData" (RFC 3339 with nanoseconds), "EntryType" (0 blob, 1 manifest)}}``), so a
restart (of either registry on the same storage) picks it up; entries already overdue fire at once.
Unlike 2.8, which rewrites the file every 5 seconds when something changed, it is rewritten as soon as
something changed (and on stop).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import threading
import typing as t

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..logs import log
from ..reference import Digest
from ..reference import InvalidDigest
from ..storage import paths

#: distribution's state file, at the root of the storage (beside ``docker/``).
STATE_PATH = paths.SCHEDULER_STATE
BLOB, MANIFEST = 0, 1
#: The longest the scheduler sleeps without looking at the clock (a wall clock may jump).
MAX_SLEEP = 60.0

_FRACTION = re.compile(r"\.(\d+)")


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    digest: Digest
    kind: int  # BLOB or MANIFEST
    due: datetime.datetime

    @property
    def key(self) -> str:
        return f"{self.name}@{self.digest}"


OnExpire = t.Callable[[Entry], None]


class Expiry:
    """The TTL scheduler: a :class:`~emulator.app.Service` whose thread runs ``on_expire`` for every
    entry that falls due, and keeps the state file up to date."""

    def __init__(self, driver: StorageDriver, ttl: float, on_expire: OnExpire) -> None:
        self.driver = driver
        self.ttl = ttl
        self.on_expire = on_expire
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dirty = False
        self._loaded = False
        self._thread: threading.Thread | None = None

    def add(self, name: str, digest: Digest, kind: int) -> None:
        """Schedule ``name@digest`` to expire ``ttl`` from now; an existing entry starts over."""
        entry = Entry(name, digest, kind, _now() + datetime.timedelta(seconds=self.ttl))
        with self._lock:
            self._entries[entry.key] = entry
            self._dirty = True
        self._wake.set()

    def entries(self) -> list[Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.due)

    def start(self) -> None:
        if self._thread is not None:
            return
        if not self._loaded:
            self._load()
            self._loaded = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="proxy-expiry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join()
        self.save()

    def run_due(self) -> list[Entry]:
        """Expire every entry that is due now; returns them."""
        now = _now()
        with self._lock:
            due = [entry for entry in self._entries.values() if entry.due <= now]
            for entry in due:
                del self._entries[entry.key]
            if due:
                self._dirty = True
        for entry in due:
            try:
                self.on_expire(entry)
            except Exception:
                # distribution logs the failure and drops the entry: the content then stays for good.
                log.exception("proxy: expiring %s failed", entry.key)
        return due

    def save(self) -> None:
        """Rewrite the state file if the schedule changed since it was last written."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            document = {
                key: {"Key": key, "ExpiryData": format_time(entry.due), "EntryType": entry.kind}
                for key, entry in self._entries.items()
            }
        try:
            self.driver.put_content(STATE_PATH, json.dumps(document).encode())
        except Exception:
            with self._lock:
                self._dirty = True
            log.exception("proxy: cannot write %s", STATE_PATH)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self.save()
            with self._lock:
                next_due = min((entry.due for entry in self._entries.values()), default=None)
            sleep = MAX_SLEEP
            if next_due is not None:
                sleep = min(max((next_due - _now()).total_seconds(), 0.0), MAX_SLEEP)
            self._wake.wait(sleep)
            self._wake.clear()

    def _load(self) -> None:
        try:
            document = json.loads(self.driver.get_content(STATE_PATH))
        except PathNotFound:
            return
        except (ValueError, RecursionError) as e:
            # RecursionError: JSON nested deeper than the decoder goes; neither kind stops the start.
            log.warning("proxy: ignoring %s: %s", STATE_PATH, e)
            return
        loaded: dict[str, Entry] = {}
        for key, value in document.items() if isinstance(document, dict) else ():
            try:
                name, _, text = str(key).rpartition("@")
                due = parse_time(value["ExpiryData"])
                entry = Entry(name, Digest.parse(text), int(value["EntryType"]), due)
            except (KeyError, TypeError, ValueError, OverflowError, InvalidDigest):  # Overflow: int(1e999)
                log.warning("proxy: ignoring the unreadable entry %r of %s", key, STATE_PATH)
                continue
            loaded[entry.key] = entry
        with self._lock:
            # Entries added before the start win: they are newer than the file.
            self._entries = {**loaded, **self._entries}


def format_time(moment: datetime.datetime) -> str:
    """Go's RFC 3339 with nanoseconds (trailing zeros dropped), in UTC."""
    text = moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time as Go writes it (up to nanoseconds, ``Z`` or an offset)."""
    # Python reads at most microseconds.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.replace("Z", "+00:00"), count=1)
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return moment


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
