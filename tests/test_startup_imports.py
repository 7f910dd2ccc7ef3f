"""Start-up imports only what the configuration needs (issue 15: start-up in milliseconds).

Every case runs a fresh interpreter, since ``sys.modules`` of the test process holds everything: a
``registry serve`` that answered its first request, a registry built in-process from the development
configuration, and ``check-config``. Werkzeug's package ``__init__`` imports its development server and
test client (``http.server``, ``http.client``, ``ssl``): skipping it would need the package replaced in
``sys.modules``, which no Werkzeug API supports, for about 14 ms; ``serve`` pays it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from pax_registry_fixtures.process import clean_environ
from pax_registry_fixtures.process import free_port

#: What only a configuration that asks for it may import: the optional features, their libraries, and
#: the command-line tools that are not ``serve``.
FEATURES = (
    "acme",
    "bcrypt",
    "boto3",
    "botocore",
    "emulator.auth",
    "emulator.debug",
    "emulator.drivers.s3",
    "emulator.letsencrypt",
    "emulator.metrics",
    "emulator.notifications",
    "emulator.ociclient",
    "emulator.packcli",
    "emulator.packs",
    "emulator.proxy",
    "emulator.storage.rediscache",
    "emulator.tls",
    "jsonschema",
    "prometheus_client",
    "redis",
    "tarfile",
)
#: What ``serve`` never needs: package metadata (read for ``--version`` and the ``info`` start line).
SERVE_NEVER = ("importlib.metadata",)
MARKER = "--- modules ---"

#: Serves ``argv[1]`` in the main thread (signal handlers need it) and, once ``/v2/`` on port ``argv[2]``
#: answers 200, prints the modules loaded and ends the process. The poller imports nothing ``serve``
#: does not import itself.
SERVE_AND_LIST = textwrap.dedent(
    f"""
    import os, socket, sys, threading, time

    def poll():
        while True:
            try:
                with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as conn:
                    conn.sendall(b"GET /v2/ HTTP/1.1\\r\\nHost: registry\\r\\nConnection: close\\r\\n\\r\\n")
                    if conn.recv(12) == b"HTTP/1.1 200":
                        break
            except OSError:
                time.sleep(0.01)
        sys.stdout.write("{MARKER}\\n" + "\\n".join(sorted(sys.modules)) + "\\n")
        sys.stdout.flush()
        os._exit(0)

    threading.Thread(target=poll, daemon=True).start()
    from emulator.cli import main
    main(["serve", sys.argv[1]])
    """
)


def python(code: str, *args: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (which prints them)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=clean_environ(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    _, marker, listed = result.stdout.partition(MARKER)
    assert marker, result.stdout + result.stderr
    return listed.split()


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules among ``modules`` that are ``names`` or inside one of them."""
    return [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in names)]


def write_config(tmp_path: Path, port: int) -> Path:
    document = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp_path / "root")},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "a fixed secret"},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_serve_answers_without_optional_features(tmp_path: Path) -> None:
    port = free_port()
    modules = python(SERVE_AND_LIST, str(write_config(tmp_path, port)), str(port))
    assert "emulator.app" in modules and "werkzeug.routing" in modules  # it did serve
    assert loaded(modules, FEATURES + SERVE_NEVER) == []


def test_default_in_process_registry_imports_no_optional_feature(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import emulator

        config = emulator.load_config({{"storage": {{"filesystem": {{"rootdirectory": sys.argv[1]}}}}}})
        emulator.make_app(config)
        print("{MARKER}", *sorted(sys.modules), sep="\\n")
        """
    )
    modules = python(code, str(tmp_path / "root"))
    assert "emulator.app" in modules
    assert loaded(modules, FEATURES) == []


def test_importing_the_package_imports_nothing_else() -> None:
    modules = python(f'import sys, emulator\nprint("{MARKER}", *sorted(sys.modules), sep="\\n")')
    assert [m for m in modules if m.startswith(("emulator.", "werkzeug", "yaml"))] == []


def test_check_config_never_imports_werkzeug(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from emulator.cli import main

        assert main(["check-config", sys.argv[1]]) == 0
        print("{MARKER}", *sorted(sys.modules), sep="\\n")
        """
    )
    modules = python(code, str(write_config(tmp_path, free_port())))
    assert loaded(modules, ("werkzeug", "h11", *FEATURES)) == []
