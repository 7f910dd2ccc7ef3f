"""Health checks (the ``health`` section) and the gate they close on the registry API.

Each configured check runs in its own daemon thread (a :class:`PeriodicChecker`, one of the app's
services), first one interval after start, and reports to the app's :class:`HealthGate`. While any
check is failing, every request to the main port is refused before routing and authentication with
distribution's 503 ``UNAVAILABLE`` (:func:`refusal`), and ``/debug/health`` on the debug port lists the
failing checks by name (:mod:`emulator.debug`).

What each check does, its name and its messages follow distribution's ``health/checks`` package, so a
dashboard or a test written against one reads the other:

========================  ==========================  ==================================================
check                     name                        fails
========================  ==========================  ==================================================
``storagedriver``         ``storagedriver_<driver>``  when a stat of the storage root fails (not found
                                                      is healthy: an empty registry)
``file[]``                the path                    while the file exists (``file exists``)
``http[]``                the URI                     when a HEAD does not answer ``statuscode``
``tcp[]``                 the address                 when a connection cannot be made
========================  ==========================  ==================================================

A check with a threshold T reports a failure only after T failures in a row; a success clears it.
``file`` checks have no threshold, as in distribution.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import typing as t

from .config.model import ConfigError
from .config.model import split_addr
from .drivers.base import PathNotFound
from .errors import Unavailable

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from .config import Config
    from .config import HealthConfig
    from .drivers.base import StorageDriver

log = logging.getLogger("emulator.health")

#: Seconds between two runs of a check whose interval is not positive (distribution's default).
DEFAULT_INTERVAL = 10.0
#: The ``detail`` of the 503 every API request gets while a check fails.
REFUSAL_DETAIL = "health check failed: please see /debug/health"

#: A check: ``None`` when healthy, else what is wrong, in one line.
Check = t.Callable[[], "str | None"]


class HealthGate:
    """The failing checks, by name: what ``/debug/health`` shows and what closes the API.

    :attr:`failing` is replaced, never changed in place, so that the request path reads it without a
    lock: an empty dict (false) while everything is healthy.
    """

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}
        self._lock = threading.Lock()

    def report(self, name: str, problem: str | None) -> None:
        """Record the latest status of the check ``name``."""
        with self._lock:
            if problem is None:
                if name in self.failing:
                    self.failing = {k: v for k, v in self.failing.items() if k != name}
                    log.info("health check %s passes again", name)
            elif self.failing.get(name) != problem:
                if name not in self.failing:
                    log.warning("health check %s failed: %s", name, problem)
                self.failing = {**self.failing, name: problem}


def refusal() -> Response:
    """The answer to every API request while a check fails: a 503 ``UNAVAILABLE`` without the API-version
    header or the configured ``http.headers``, since distribution's gate answers before the app that adds
    them."""
    response = Unavailable(REFUSAL_DETAIL).get_response()
    # Go spells reason phrases as RFC 9110 does; Werkzeug's are in capitals.
    response.status = "503 Service Unavailable"
    return response


class PeriodicChecker:
    """Runs ``check`` every ``interval`` seconds in a daemon thread and reports to ``gate``.

    It is a :class:`~emulator.app.Service`. :meth:`run_once` is the step the thread repeats; tests drive
    it directly to check the threshold without waiting for intervals.
    """

    def __init__(
        self, name: str, check: Check, gate: HealthGate, *, interval: float, threshold: int = 0
    ) -> None:
        self.name = name
        self.check = check
        self.gate = gate
        self.interval = interval if interval > 0 else DEFAULT_INTERVAL
        self.threshold = max(threshold, 0)
        #: Failures in a row so far.
        self.failures = 0
        self._stop: threading.Event | None = None

    def run_once(self) -> None:
        """Run the check and report its status, counting failures against the threshold."""
        try:
            problem = self.check()
        except Exception as e:
            # A check that breaks is a failing check, never a dead thread.
            log.exception("health check %s raised", self.name)
            problem = str(e) or type(e).__name__
        if problem is None:
            self.failures = 0
        elif self.failures < self.threshold:
            self.failures += 1
        self.gate.report(self.name, problem if self.failures >= self.threshold else None)

    def start(self) -> None:
        if self._stop is not None:
            return
        # A thread of its own event: one stuck in a slow check after stop() ends at its next look,
        # and never runs alongside the thread a later start() makes.
        stop = self._stop = threading.Event()
        threading.Thread(target=self._run, args=(stop,), name=f"health-{self.name}", daemon=True).start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.run_once()


def storage_check(driver: StorageDriver) -> Check:
    """A stat of the storage root; not found is healthy (nothing was stored yet)."""

    def check() -> str | None:
        try:
            driver.stat("/")
        except PathNotFound:
            return None
        except Exception as e:
            return str(e) or type(e).__name__
        return None

    return check


def file_check(path: str) -> Check:
    """Failing while ``path`` exists: an operator takes the registry out of service with ``touch``."""

    def check() -> str | None:
        try:
            os.stat(path)
        except OSError:
            return None
        return "file exists"

    return check


def http_check(uri: str, *, status: int, timeout: float, headers: t.Mapping[str, t.Sequence[str]]) -> Check:
    """A HEAD of ``uri`` (redirects followed, as Go's client does) must answer ``status``.

    ``timeout`` bounds the whole exchange, as Go's ``http.Client.Timeout`` does; requests' own timeout is
    per read, which an upstream sending a byte at a time never reaches. So with a timeout the HEAD runs
    in a thread of its own, and a run that finds the previous HEAD still going waits for that one
    rather than start another: one exchange in flight per check, however slow the upstream.
    """
    sent = {name: ", ".join(values) for name, values in headers.items()}

    def head() -> str | None:
        import requests

        try:
            response = requests.head(uri, headers=sent, timeout=timeout or None, allow_redirects=True)
            response.close()
        except (requests.RequestException, ValueError):
            return f"error while checking: {uri}"
        if response.status_code != status:
            return f"downstream service returned unexpected status: {response.status_code}"
        return None

    if timeout <= 0:
        return head
    in_flight: list[_Attempt] = []

    def check() -> str | None:
        if not in_flight or in_flight[0].done.is_set():
            in_flight[:] = [_Attempt(head, f"health-head-{uri}")]
        attempt = in_flight[0]
        if not attempt.done.wait(timeout):
            return f"error while checking: {uri}"
        return attempt.result

    return check


class _Attempt:
    """One run of a check in a daemon thread, its result read once :attr:`done` is set."""

    def __init__(self, check: Check, name: str) -> None:
        self.done = threading.Event()
        self.result: str | None = None
        self._check = check
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._check()
        except Exception as e:
            self.result = str(e) or type(e).__name__
        finally:
            self.done.set()


def tcp_check(addr: str, *, timeout: float) -> Check:
    """A TCP connection to ``addr`` (``host:port``) must open."""

    def check() -> str | None:
        try:
            host, port = split_addr(addr)
            socket.create_connection((host or "localhost", port), timeout=timeout or None).close()
        except (OSError, ValueError):
            return f"connection to {addr} failed"
        return None

    return check


def build_checkers(config: Config, driver: StorageDriver, gate: HealthGate) -> list[PeriodicChecker]:
    """One checker per configured check, in the order of the file.

    :raises ConfigError: two checks have the same name (distribution refuses to start too).
    """
    health: HealthConfig = config.health
    checkers: list[PeriodicChecker] = []
    if health.storagedriver.enabled:
        checkers.append(
            PeriodicChecker(
                f"storagedriver_{config.storage.driver}",
                storage_check(driver),
                gate,
                interval=health.storagedriver.interval,
                threshold=health.storagedriver.threshold,
            )
        )
    for file in health.file:
        checkers.append(PeriodicChecker(file.file, file_check(file.file), gate, interval=file.interval))
    for http in health.http:
        check = http_check(http.uri, status=http.statuscode, timeout=http.timeout, headers=http.headers)
        checkers.append(
            PeriodicChecker(http.uri, check, gate, interval=http.interval, threshold=http.threshold)
        )
    for tcp in health.tcp:
        checkers.append(
            PeriodicChecker(
                tcp.addr,
                tcp_check(tcp.addr, timeout=tcp.timeout),
                gate,
                interval=tcp.interval,
                threshold=tcp.threshold,
            )
        )
    names: set[str] = set()
    for checker in checkers:
        if checker.name in names:
            raise ConfigError(config.source, "health", f"two checks are named {checker.name!r}")
        names.add(checker.name)
    return checkers
