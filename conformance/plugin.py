"""pytest plugin of the conformance suite: options, markers, header, preflight, failure reports, the
summary table and the report files.

Loaded through the ``pytest11`` entry point ``pax_conformance`` by every pytest run in an environment where
the project is installed, so it must cost nothing: it imports only pytest, the standard library and the
suite's stdlib-only ``render``, ``report`` and ``settings`` modules, and stays quiet unless conformance tests
run. Run the suite with::

    pytest --pyargs conformance --pax-registry-url https://registry.example:5000 \
        --pax-registry-profile docker --pax-report-html report.html --pax-report-json report.json

Before any check, a preflight (:mod:`conformance.preflight`) makes sure the suite can reach, trust and log
in to the registry; if not, the run ends with one message and exit status 2. Reports work under
pytest-xdist: the controller writes them from the workers' reports. ``--pax-report-compare A.json B.json
--pax-report-html both.html`` runs nothing and writes the runs side by side.

Without a URL the suite starts the emulator in process. Where the project is not installed, load the plugin
with ``-p conformance.plugin`` instead; never both, pytest refuses to register one plugin twice.
"""

from __future__ import annotations

import datetime
import os
import secrets
import sys
import time
import typing as t
from pathlib import Path

import pytest

from conformance.render import printable
from conformance.report import DETAILS_LIMIT
from conformance.report import Check
from conformance.report import Run
from conformance.report import table_lines
from conformance.settings import Settings

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
PROFILE_OPTION = "--pax-registry-profile"
REPORT_JSON_OPTION = "--pax-report-json"
REPORT_HTML_OPTION = "--pax-report-html"
REPORT_COMPARE_OPTION = "--pax-report-compare"
REPORT_NAME_OPTION = "--pax-report-name"

#: What a registry must offer beyond the OCI distribution spec, by profile.
PROFILES: dict[str, str] = {
    "oci": "OCI distribution-spec 1.1",
    "docker": "OCI, and the Docker Registry v2 behaviours Docker clients rely on (catalog, ETags, lists...)",
    "pack": "OCI, and the pack registry surface (/health, /v1/, pushes under spectro-packs/archive/)",
}

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


SETTINGS_KEY = pytest.StashKey[Settings]()
RECORDER_KEY = pytest.StashKey[Recorder]()
_STARTED_KEY = pytest.StashKey[int]()
_ORDER_KEY = pytest.StashKey[int]()


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
        PROFILE_OPTION,
        dest="pax_registry_profile",
        default=_env("PAX_REGISTRY_PROFILE") or "oci",
        choices=sorted(PROFILES),
        help="what the registry must offer beyond OCI: oci (nothing), docker (catalog, ETags, manifest "
        "lists), pack (/health, /v1/) (env PAX_REGISTRY_PROFILE; default oci)",
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
    group.addoption(
        REPORT_JSON_OPTION,
        dest="pax_report_json",
        default=None,
        metavar="PATH",
        help="write every check's verdict, spec section and failing HTTP exchange as JSON",
    )
    group.addoption(
        REPORT_HTML_OPTION,
        dest="pax_report_html",
        default=None,
        metavar="PATH",
        help="write the same as one self-contained HTML page (with --pax-report-compare: the comparison)",
    )
    group.addoption(
        REPORT_NAME_OPTION,
        dest="pax_report_name",
        default=None,
        metavar="NAME",
        help="the run's name in reports and comparisons; default the registry URL",
    )
    group.addoption(
        REPORT_COMPARE_OPTION,
        dest="pax_report_compare",
        nargs="+",
        default=None,
        metavar="REPORT.json",
        help="run no checks: write --pax-report-html as a side-by-side view of these JSON reports",
    )


def _settings(config: pytest.Config) -> Settings:
    option = config.option
    namespace = option.pax_namespace or _env("OCI_NAMESPACE") or f"conformance/{secrets.token_hex(4)}"
    namespace = namespace.strip("/")
    switches = {group: os.environ.get(name) for group, name in WORKFLOW_SWITCHES.items()}
    if option.pax_registry_profile not in PROFILES:
        # argparse checks choices on the command line only, not on a default from the environment.
        raise pytest.UsageError(
            f"{PROFILE_OPTION}={option.pax_registry_profile}: choose one of {', '.join(PROFILES)}"
        )
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
        profile=option.pax_registry_profile,
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, description in GROUPS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    config.addinivalue_line("markers", f"{SUITE_MARKER}: a check of the registry conformance suite")
    config.addinivalue_line("markers", "spec(section): the spec section a check enforces, for the reports")
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
    lines = [
        f"pax conformance target: {settings.target}",
        f"pax conformance profile: {settings.profile} ({PROFILES[settings.profile]})",
        f"pax conformance namespace: {settings.namespace}",
    ]
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
    # Reports list the checks in this order, also when pytest-xdist runs them in another.
    for index, item in enumerate(suite):
        item.stash[_ORDER_KEY] = index


#: How preflight messages start.
PREFLIGHT = "pax conformance preflight"
#: The exit status of a run the preflight stopped: 2, as command-line tools answer a usage error.
PREFLIGHT_STATUS = 2

# Options that make pytest show something instead of running tests: no registry is needed for them.
_INFORMATION_OPTIONS = ("help", "version", "markers", "showfixtures", "show_fixtures_per_test", "cacheshow")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Runs before pytest starts the session: the comparison page, or the preflight."""
    if config.option.pax_report_compare:
        return _compare(config)
    return _preflight(config)


def _compare(config: pytest.Config) -> int:
    """``--pax-report-compare``: write the side-by-side page and run nothing."""
    from conformance import report

    if not config.option.pax_report_html:
        raise pytest.UsageError(
            f"{REPORT_COMPARE_OPTION} writes a page: give its path with {REPORT_HTML_OPTION}"
        )
    try:
        page = report.comparison_page([report.load(source) for source in config.option.pax_report_compare])
    except report.ReportError as error:
        raise pytest.UsageError(f"{REPORT_COMPARE_OPTION}: {error}") from None
    path = report.write_html(page, config.option.pax_report_html)
    print(f"pax conformance: {len(config.option.pax_report_compare)} runs side by side in {path}")
    return 0


def _preflight(config: pytest.Config) -> int | None:
    """A registry the suite cannot reach, trust or log in to ends the run here, with one message.

    Here, before pytest prints its header or pytest-xdist starts workers, returning a status ends the run
    with nothing printed but the message. An emulator started in process is looked at by the ``registry``
    fixture instead, once it runs; the configuration file is read here in both cases.
    """
    option = config.option
    if hasattr(config, "workerinput") or option.collectonly or not _selects_suite(config):
        return None
    if any(getattr(option, name, False) for name in _INFORMATION_OPTIONS):
        return None
    from conformance.preflight import config_problem
    from conformance.preflight import problem

    settings = _settings(config)
    found = config_problem(settings) or (problem(settings) if settings.url else None)
    if not found:
        return None
    print(f"ERROR: {PREFLIGHT}: {found}", file=sys.stderr)
    return PREFLIGHT_STATUS


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


def spec_of(item: pytest.Item) -> str:
    """The rule a check enforces: its ``spec`` marker, else the first paragraph of its docstring."""
    marker = item.get_closest_marker("spec")
    if marker is not None and marker.args:
        return " ".join(str(arg) for arg in marker.args)
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> t.Generator[None, t.Any, t.Any]:
    report = yield
    if not _is_suite_item(item):
        return report
    # Extra attributes of a report travel with it to the pytest-xdist controller, where reports are written.
    report.pax_spec = spec_of(item)
    report.pax_order = item.stash.get(_ORDER_KEY, 0)
    if report.failed:
        recorder = item.config.stash.get(RECORDER_KEY, None)
        if recorder is not None:
            text = printable(recorder.explain(_frame_values(call), item.stash.get(_STARTED_KEY, 0)))
            if text:
                report.sections.append((EXCHANGE_SECTION, text))
                # junitxml writes the properties of the teardown report, which copies the item's.
                item.user_properties.append(("http_exchange", text))
    _make_printable(report)
    return report


def _make_printable(report: pytest.TestReport) -> None:
    """Escape the control bytes a registry put in what a report shows (a message quoting a body, say)."""
    report.sections = [(heading, printable(content)) for heading, content in report.sections]
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        path, line, reason = longrepr
        report.longrepr = (path, line, printable(reason))
    elif longrepr is not None:
        text = str(longrepr)
        # Rare (the registry has to send control bytes and a check has to quote them): the report becomes
        # plain text, losing only its colours.
        if printable(text) != text:
            report.longrepr = printable(text)


#: The heading of the HTTP exchange in a failure report.
EXCHANGE_SECTION = "pax conformance: HTTP exchange"


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


def check_id(nodeid: str) -> str:
    """``test_pull::Class::test[param]`` for a node id, wherever the suite is installed."""
    path, _, rest = nodeid.partition("::")
    return f"{Path(path).stem}::{rest}" if rest else Path(path).stem


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return printable(str(crash.message))
    lines = report.longreprtext.strip().splitlines()
    # pytest marks the lines of the error itself with "E".
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return printable("\n".join(errors) or (lines[-1] if lines else report.when or ""))


class _Tally:
    """Collects every check's verdict; a plugin object, because report hooks get no config.

    Under pytest-xdist the controller's instance sees every worker's reports and writes the reports;
    the workers' instances stay quiet.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.checks: dict[str, Check] = {}
        self.order: dict[str, int] = {}
        self.started = time.time()
        self.written: list[Path] = []

    def pytest_sessionstart(self) -> None:
        self.started = time.time()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if SUITE_MARKER not in report.keywords:
            return
        check = self.checks.get(report.nodeid)
        if check is None:
            group = next((name for name in GROUPS if name in report.keywords), "other")
            check = self.checks[report.nodeid] = Check(check_id(report.nodeid), group, "")
        self.order[report.nodeid] = getattr(report, "pax_order", len(self.order))
        check.spec = check.spec or getattr(report, "pax_spec", "")
        first_failure = report.failed and check.outcome != "failed"
        check.outcome, reason = _outcome(report, check.outcome)
        check.reason = check.reason or reason
        check.duration = round(check.duration + report.duration, 4)
        if first_failure:
            check.message = _failure_message(report)
            check.details = printable(report.longreprtext)[:DETAILS_LIMIT]
            check.exchange = dict(report.sections).get(EXCHANGE_SECTION, "")

    def run(self, exitstatus: int | None = None) -> Run:
        settings = self.config.stash[SETTINGS_KEY]
        groups = [*GROUPS, "other"]
        ordered = sorted(
            self.checks.items(), key=lambda item: (groups.index(item[1].group), self.order.get(item[0], 0))
        )
        checks = [check for _, check in ordered]
        return Run(
            name=self.config.option.pax_report_name or settings.target,
            target=settings.target,
            profile=settings.profile,
            namespace=settings.namespace,
            started=datetime.datetime.fromtimestamp(self.started, datetime.UTC).isoformat(timespec="seconds"),
            duration=round(time.time() - self.started, 3),
            groups=dict(GROUPS),
            checks=checks,
            exitstatus=exitstatus,
        )

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        option = self.config.option
        if hasattr(self.config, "workerinput") or not (option.pax_report_json or option.pax_report_html):
            return
        from conformance import report

        run = self.run(int(exitstatus))
        if option.pax_report_json:
            self.written.append(report.write_json(run, option.pax_report_json))
        if option.pax_report_html:
            self.written.append(report.write_html(report.run_page(run), option.pax_report_html))

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if not self.checks:
            return
        terminalreporter.write_sep("=", f"pax conformance: {self.config.stash[SETTINGS_KEY].target}")
        for line in table_lines(self.run()):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"report: {path}")


_TALLY_NAME = "pax-conformance-tally"


def pytest_unconfigure(config: pytest.Config) -> None:
    tally = config.pluginmanager.get_plugin(_TALLY_NAME)
    if tally is not None:
        config.pluginmanager.unregister(tally)
