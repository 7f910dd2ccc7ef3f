"""pytest plugin of the conformance suite: options, markers, header, failure reports and the summary.

Loaded through the ``pytest11`` entry point ``pax_conformance`` by every pytest run in an environment where
the project is installed, so it must cost nothing: it imports only pytest and the standard library, and
stays quiet unless conformance tests run. Run the suite with::

    pytest --pyargs conformance --pax-registry-url https://registry.example:5000

Without a URL the suite starts the emulator in process. Where the project is not installed, load the plugin
with ``-p conformance.plugin`` instead; never both, pytest refuses to register one plugin twice.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
import typing as t
from pathlib import Path

import pytest

if t.TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

#: Options and the environment variables that provide their defaults.
URL_OPTION = "--pax-registry-url"
USERNAME_OPTION = "--pax-registry-username"
PASSWORD_OPTION = "--pax-registry-password"
CACERT_OPTION = "--pax-registry-cacert"
CLIENT_CERT_OPTION = "--pax-registry-client-cert"
CLIENT_KEY_OPTION = "--pax-registry-client-key"
CONFIG_OPTION = "--pax-registry-config"
NAMESPACE_OPTION = "--pax-namespace"
CROSSMOUNT_OPTION = "--pax-crossmount-namespace"

#: Groups of checks, each a marker; the first four are the OCI suite's workflows.
GROUPS: dict[str, str] = {
    "pull": "OCI conformance: Pull workflow",
    "push": "OCI conformance: Push workflow",
    "discovery": "OCI conformance: Content Discovery workflow",
    "management": "OCI conformance: Content Management workflow",
    "docker": "Docker Registry HTTP API v2 behaviours beyond OCI",
    "pack": "Spectro Cloud pack registry surface (/health, /v1/)",
    "config": "checks derived from --pax-registry-config",
}

#: The OCI suite's switches for its workflows.
WORKFLOW_SWITCHES: dict[str, str] = {
    "pull": "OCI_TEST_PULL",
    "push": "OCI_TEST_PUSH",
    "discovery": "OCI_TEST_CONTENT_DISCOVERY",
    "management": "OCI_TEST_CONTENT_MANAGEMENT",
}

#: A skip whose reason starts with this is an optional feature the registry lacks.
UNSUPPORTED = "unsupported:"

#: Marks every conformance item, so reports can be told apart from other tests' (also under xdist).
SUITE_MARKER = "pax_conformance"

PACKAGE_DIR = Path(__file__).resolve().parent


class Recorder(t.Protocol):
    """What the suite's HTTP client offers to the failure report (see ``conformance.client``)."""

    def explain(self, candidates: t.Iterable[object], since_ns: int, limit: int = ...) -> str: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """The target and the run's choices, resolved once from options and the environment."""

    url: str | None
    username: str | None
    password: str | None
    cacert: str | None
    client_cert: str | None
    client_key: str | None
    config_path: str | None
    namespace: str
    crossmount_namespace: str
    disabled: dict[str, str]

    @property
    def target(self) -> str:
        return self.url or "the in-process emulator"


SETTINGS_KEY = pytest.StashKey[Settings]()
RECORDER_KEY = pytest.StashKey[Recorder]()
_STARTED_KEY = pytest.StashKey[int]()


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def parse_bool(value: str) -> bool | None:
    """Go's ``strconv.ParseBool``, which the OCI suite uses for its switches; ``None`` if unparsable."""
    if value in {"1", "t", "T", "TRUE", "true", "True"}:
        return True
    if value in {"0", "f", "F", "FALSE", "false", "False"}:
        return False
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pax-conformance", "registry conformance suite (pytest --pyargs conformance)")
    group.addoption(
        URL_OPTION,
        dest="pax_registry_url",
        default=_env("PAX_REGISTRY_URL"),
        metavar="URL",
        help="registry under test (env PAX_REGISTRY_URL, or OCI_ROOT_URL); default: an in-process emulator",
    )
    group.addoption(
        USERNAME_OPTION,
        dest="pax_registry_username",
        default=_env("PAX_REGISTRY_USERNAME"),
        metavar="USER",
        help="user for Basic or token auth (env PAX_REGISTRY_USERNAME, or OCI_USERNAME)",
    )
    group.addoption(
        PASSWORD_OPTION,
        dest="pax_registry_password",
        default=_env("PAX_REGISTRY_PASSWORD"),
        metavar="PASSWORD",
        help="its password (env PAX_REGISTRY_PASSWORD, or OCI_PASSWORD)",
    )
    group.addoption(
        CACERT_OPTION,
        dest="pax_registry_cacert",
        default=_env("PAX_REGISTRY_CACERT"),
        metavar="PEM",
        help="CA bundle to verify the registry's certificate (env PAX_REGISTRY_CACERT)",
    )
    group.addoption(
        CLIENT_CERT_OPTION,
        dest="pax_registry_client_cert",
        default=_env("PAX_REGISTRY_CLIENT_CERT"),
        metavar="PEM",
        help="client certificate for registries that require one (env PAX_REGISTRY_CLIENT_CERT)",
    )
    group.addoption(
        CLIENT_KEY_OPTION,
        dest="pax_registry_client_key",
        default=_env("PAX_REGISTRY_CLIENT_KEY"),
        metavar="PEM",
        help="its key, unless inside the certificate file (env PAX_REGISTRY_CLIENT_KEY)",
    )
    group.addoption(
        CONFIG_OPTION,
        dest="pax_registry_config",
        default=_env("PAX_REGISTRY_CONFIG"),
        metavar="CONFIG.yml",
        help="configuration the registry runs with; enables the 'config' checks (env PAX_REGISTRY_CONFIG)",
    )
    group.addoption(
        NAMESPACE_OPTION,
        dest="pax_namespace",
        default=_env("PAX_NAMESPACE"),
        metavar="PREFIX",
        help="repository prefix for all the suite writes (env OCI_NAMESPACE); default conformance/<random>",
    )
    group.addoption(
        CROSSMOUNT_OPTION,
        dest="pax_crossmount_namespace",
        default=None,
        metavar="REPO",
        help="target repository of mount checks (env OCI_CROSSMOUNT_NAMESPACE); default <prefix>/crossmount",
    )


def _settings(config: pytest.Config) -> Settings:
    option = config.option
    namespace = option.pax_namespace or _env("OCI_NAMESPACE") or f"conformance/{secrets.token_hex(4)}"
    namespace = namespace.strip("/")
    switches = {group: os.environ.get(name) for group, name in WORKFLOW_SWITCHES.items()}
    disabled: dict[str, str] = {}
    # As in the OCI suite, the switches select workflows; a run that sets none of them runs all.
    if any(value is not None for value in switches.values()):
        for group, value in switches.items():
            if not parse_bool(value or ""):
                disabled[group] = f"disabled: {WORKFLOW_SWITCHES[group]} is not true"
    return Settings(
        url=(option.pax_registry_url or _env("OCI_ROOT_URL") or "").rstrip("/") or None,
        username=option.pax_registry_username or _env("OCI_USERNAME"),
        password=option.pax_registry_password or _env("OCI_PASSWORD"),
        cacert=option.pax_registry_cacert,
        client_cert=option.pax_registry_client_cert,
        client_key=option.pax_registry_client_key,
        config_path=option.pax_registry_config,
        namespace=namespace,
        crossmount_namespace=option.pax_crossmount_namespace
        or _env("OCI_CROSSMOUNT_NAMESPACE")
        or f"{namespace}/crossmount",
        disabled=disabled,
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, description in GROUPS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    config.addinivalue_line("markers", f"{SUITE_MARKER}: a check of the registry conformance suite")
    config.stash[SETTINGS_KEY] = _settings(config)
    config.pluginmanager.register(_Tally(config), _TALLY_NAME)


def _selects_suite(config: pytest.Config) -> bool:
    """Whether the command line points at the suite (the header is printed before collection)."""
    for arg in config.args:
        name = arg.split("::", 1)[0]
        if config.option.pyargs and (name == "conformance" or name.startswith("conformance.")):
            return True
        path = Path(config.invocation_params.dir, name).resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents or path in PACKAGE_DIR.parents:
            return True
    return False


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _selects_suite(config):
        return None
    settings = config.stash[SETTINGS_KEY]
    lines = [f"pax conformance target: {settings.target}", f"pax conformance namespace: {settings.namespace}"]
    if settings.config_path:
        lines.append(f"pax conformance registry config: {settings.config_path}")
    if settings.disabled:
        lines.append(f"pax conformance disabled workflows: {', '.join(sorted(settings.disabled))}")
    return lines


def _is_suite_item(item: pytest.Item) -> bool:
    return Path(item.path).resolve().parent == PACKAGE_DIR


def _group_of(item: pytest.Item) -> str:
    return next((name for name in GROUPS if item.get_closest_marker(name)), "other")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    disabled = config.stash[SETTINGS_KEY].disabled
    suite = [item for item in items if _is_suite_item(item)]
    if not suite:
        return
    for item in suite:
        item.add_marker(SUITE_MARKER)
        reason = disabled.get(_group_of(item))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    # Run the groups in the OCI suite's order (pull, push, discovery, management), then the others;
    # the sort is stable, so each module stays in one piece and in file order.
    order = {name: index for index, name in enumerate([*GROUPS, "other"])}
    first = items.index(suite[0])
    others = [item for item in items if not _is_suite_item(item)]
    suite.sort(key=lambda item: order[_group_of(item)])
    items[:] = others[:first] + suite + others[first:]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTED_KEY] = time.monotonic_ns()


def _frame_values(call: pytest.CallInfo[None]) -> list[object]:
    """Values the failing code held, innermost frame last: the responses it was checking are among them."""
    if call.excinfo is None:
        return []
    values: list[object] = []
    for entry in call.excinfo.traceback:
        if Path(entry.path).resolve().parent == PACKAGE_DIR:
            values.extend(entry.frame.f_locals.values())
    return values


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> t.Generator[None, t.Any, t.Any]:
    report = yield
    if report.failed and _is_suite_item(item):
        recorder = item.config.stash.get(RECORDER_KEY, None)
        if recorder is not None:
            text = recorder.explain(_frame_values(call), item.stash.get(_STARTED_KEY, 0))
            if text:
                report.sections.append(("pax conformance: HTTP exchange", text))
                # junitxml writes the properties of the teardown report, which copies the item's.
                item.user_properties.append(("http_exchange", text))
    return report


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return message.removeprefix("Skipped: ")


def _outcome(report: pytest.TestReport, previous: str) -> tuple[str, str]:
    if report.failed or previous == "failed":
        return "failed", ""
    if report.skipped:
        reason = _skip_reason(report)
        return ("unsupported" if reason.startswith(UNSUPPORTED) else "skipped"), reason
    if report.when == "call" and report.passed:
        return "passed", ""
    return previous, ""


def summarize(outcomes: t.Mapping[str, tuple[str, str, str]]) -> list[str]:
    """The table printed at the end: one line per group, then the features the registry lacks."""
    columns = ("passed", "failed", "unsupported", "skipped")
    counts: dict[str, dict[str, int]] = {}
    for group, outcome, _ in outcomes.values():
        row = counts.setdefault(group, dict.fromkeys(columns, 0))
        if outcome in row:
            row[outcome] += 1
    order = [name for name in [*GROUPS, "other"] if name in counts]
    totals = {column: sum(counts[name][column] for name in order) for column in columns}
    lines = [f"{'group':<12}" + "".join(f"{column:>12}" for column in columns)]
    for name, row in [*((name, counts[name]) for name in order), ("total", totals)]:
        lines.append(f"{name:<12}" + "".join(f"{row[column]:>12}" for column in columns))
    reasons = sorted({reason for _, outcome, reason in outcomes.values() if outcome == "unsupported"})
    if reasons:
        lines += ["", *reasons]
    return lines


class _Tally:
    """Counts outcomes per group; registered as a plugin object because report hooks get no config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        #: node id -> (group, outcome, skip reason)
        self.outcomes: dict[str, tuple[str, str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if SUITE_MARKER not in report.keywords:
            return
        group = next((name for name in GROUPS if name in report.keywords), "other")
        _, previous, previous_reason = self.outcomes.get(report.nodeid, (group, "", ""))
        outcome, reason = _outcome(report, previous)
        self.outcomes[report.nodeid] = (group, outcome, reason or previous_reason)

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if not self.outcomes:
            return
        terminalreporter.write_sep("=", f"pax conformance: {self.config.stash[SETTINGS_KEY].target}")
        for line in summarize(self.outcomes):
            terminalreporter.write_line(line)


_TALLY_NAME = "pax-conformance-tally"


def pytest_unconfigure(config: pytest.Config) -> None:
    tally = config.pluginmanager.get_plugin(_TALLY_NAME)
    if tally is not None:
        config.pluginmanager.unregister(tally)
