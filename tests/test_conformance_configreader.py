"""The conformance suite's own configuration reader (:mod:`conformance.configreader`).

It is tested on its own against distribution's override rules, then side by side with the emulator's
reader on the same files and variables: where the two disagree on a value a ``config`` check uses, a test
fails, unless the row is in :data:`DIFFERENCES` with its reason. A last guard runs the suite in a fresh
interpreter against a live server and checks that it never imported the emulator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import typing as t
from dataclasses import replace
from pathlib import Path

import pytest

import conformance
from conformance.configreader import TLS
from conformance.configreader import ConfigReadError
from conformance.configreader import Expectations
from conformance.configreader import Htpasswd
from conformance.configreader import expectations
from conformance.configreader import load_raw
from emulator import config as emulator_config
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ


def read(tmp_path: Path, text: str, environ: t.Mapping[str, str] | None = None) -> dict[str, t.Any]:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return load_raw(str(path), environ or {})


# -- the file and the variables -----------------------------------------------------------------------

STORAGE_FILE = """
    storage:
      filesystem: {rootdirectory: /data}
      cache: {blobdescriptor: inmemory}
      delete: {enabled: true}
"""
AUTH_FILE = """
    auth:
      htpasswd: {realm: file realm, path: /auth/htpasswd}
"""
HEADERS_FILE = """
    http:
      headers:
        X-Frame-Options: [DENY]
"""
TLS_FILE = """
    http:
      tls:
        certificate: /tls/cert.pem
        clientcas: [/tls/a.pem]
"""

#: (file, variables, the document read).
READS: dict[str, tuple[str, dict[str, str], dict[str, t.Any]]] = {
    "file only": (
        STORAGE_FILE,
        {},
        {
            "storage": {
                "filesystem": {"rootdirectory": "/data"},
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": True},
            }
        },
    ),
    "empty file": ("", {}, {}),
    "bare storage name": ("storage: inmemory", {}, {"storage": {"inmemory": {}}}),
    "bare auth name": ("auth: htpasswd", {}, {"auth": {"htpasswd": {}}}),
    "a new key": (
        "storage: inmemory",
        {"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
        {"storage": {"inmemory": {}, "delete": {"enabled": True}}},
    ),
    "a key changed": (
        STORAGE_FILE,
        {"REGISTRY_STORAGE_DELETE_ENABLED": "false"},
        {
            "storage": {
                "filesystem": {"rootdirectory": "/data"},
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": False},
            }
        },
    ),
    "values are YAML": (
        "",
        {
            "REGISTRY_A_LIST": "[a, 2]",
            "REGISTRY_A_MAP": "{k: v}",
            "REGISTRY_A_NUMBER": "5",
            "REGISTRY_A_NULL": "",
        },
        {"a": {"list": ["a", 2], "map": {"k": "v"}, "number": 5, "null": None}},
    ),
    "a quoted YAML string stays a string": (
        "",
        {"REGISTRY_STORAGE_DELETE_ENABLED": '"true"'},
        {"storage": {"delete": {"enabled": "true"}}},
    ),
    "a section replaced by a name": (
        STORAGE_FILE,
        {"REGISTRY_STORAGE": "inmemory"},
        {"storage": {"inmemory": {}}},
    ),
    "a section replaced by a mapping": (
        STORAGE_FILE,
        {"REGISTRY_STORAGE": "{inmemory: {}, delete: {enabled: false}}"},
        {"storage": {"inmemory": {}, "delete": {"enabled": False}}},
    ),
    "a section emptied": (AUTH_FILE, {"REGISTRY_AUTH": ""}, {"auth": None}),
    # Sorted order, whatever order the environment lists them in: the section first, then its keys.
    "specific after general": (
        STORAGE_FILE + AUTH_FILE,
        {
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
            "REGISTRY_AUTH_HTPASSWD_REALM": "env realm",
            "REGISTRY_STORAGE": "inmemory",
            "REGISTRY_AUTH": "htpasswd",
        },
        {
            "storage": {"inmemory": {}, "delete": {"enabled": True}},
            "auth": {"htpasswd": {"realm": "env realm"}},
        },
    ),
    "existing keys matched in any case": (
        "Custom:\n  Delete: {Enabled: false}",
        {"REGISTRY_CUSTOM_DELETE_ENABLED": "true"},
        {"Custom": {"Delete": {"Enabled": False, "enabled": True}}},
    ),
    "the last key is set in lower case": (
        HEADERS_FILE,
        {"REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[SAMEORIGIN]"},
        {"http": {"headers": {"X-Frame-Options": ["DENY"], "x-frame-options": ["SAMEORIGIN"]}}},
    ),
    "a null section made anew": (
        "storage:\n  inmemory:\n  delete:",
        {"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
        {"storage": {"inmemory": None, "delete": {"enabled": True}}},
    ),
    "a key inside a string is ignored": (
        "http: {host: h}",
        {"REGISTRY_HTTP_HOST_NAME": "x"},
        {"http": {"host": "h"}},
    ),
    "a list element replaced": (
        TLS_FILE,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_0": "/tls/b.pem"},
        {"http": {"tls": {"certificate": "/tls/cert.pem", "clientcas": ["/tls/b.pem"]}}},
    ),
    "a list appended to": (
        TLS_FILE,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_1": "/tls/b.pem"},
        {"http": {"tls": {"certificate": "/tls/cert.pem", "clientcas": ["/tls/a.pem", "/tls/b.pem"]}}},
    ),
    "a list made from nothing": (
        "",
        {"REGISTRY_HTTP_TLS_CLIENTCAS_0": "/a", "REGISTRY_HTTP_TLS_CLIENTCAS_1": "/b"},
        {"http": {"tls": {"clientcas": ["/a", "/b"]}}},
    ),
    "a key inside a list element": (
        "",
        {"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME": "hook"},
        {"notifications": {"endpoints": [{"name": "hook"}]}},
    ),
    "variables that are no overrides": (
        "storage: inmemory",
        {
            "REGISTRY_CONFIGURATION_PATH": "/etc/registry.yml",
            "REGISTRY_storage_delete_enabled": "true",
            "REGISTRY_STORAGE__X": "1",
            "PAX_STORAGE": "s3",
            "REGISTRY_": "x",
        },
        {"storage": {"inmemory": {}}},
    ),
}


@pytest.mark.parametrize(("text", "environ", "document"), list(READS.values()), ids=list(READS))
def test_reads(tmp_path: Path, text: str, environ: dict[str, str], document: dict[str, t.Any]) -> None:
    assert read(tmp_path, text, environ) == document


#: (file, variables, what the message says after the file's path or the variable's name).
MALFORMED: dict[str, tuple[str, dict[str, str], str]] = {
    "file YAML": (
        "storage: [inmemory\n",
        {},
        "{path}: not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1",
    ),
    "file tab": (
        "storage:\n\tinmemory: {}\n",
        {},
        "{path}: not valid YAML: found character '\\t' that cannot start any token at line 2, column 1",
    ),
    "top level a list": ("- storage\n", {}, "{path}: the top level must be a mapping, not list"),
    "top level a string": ("storage\n", {}, "{path}: the top level must be a mapping, not str"),
    "variable YAML": (
        "",
        {"REGISTRY_HTTP_TLS_CLIENTCAS": "[a"},
        "REGISTRY_HTTP_TLS_CLIENTCAS: not a valid YAML value: "
        "expected ',' or ']', but got '<stream end>' at line 1, column 3",
    ),
    "index beyond the end": (
        TLS_FILE,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_2": "/c"},
        "REGISTRY_HTTP_TLS_CLIENTCAS_2: undefined index 2 (the list has 1)",
    ),
    "index not a number": (
        TLS_FILE,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_FIRST": "/c"},
        "REGISTRY_HTTP_TLS_CLIENTCAS_FIRST: non-numeric index 'FIRST' into a list",
    ),
}


@pytest.mark.parametrize(("text", "environ", "message"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_input_is_one_clear_line(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigReadError) as error:
        read(tmp_path, text, environ)
    assert str(error.value) == message.format(path=tmp_path / "config.yml")


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yml"
    with pytest.raises(ConfigReadError, match=f"^{path}: cannot read the configuration: .*No such file"):
        load_raw(str(path), {})


# -- what the checks read -----------------------------------------------------------------------------

NOTHING = Expectations(headers={}, htpasswd=None, tls=None, deletes_enabled=False, read_only=False)

#: (file, what the checks expect from it).
EXPECTATIONS: dict[str, tuple[str, Expectations]] = {
    "nothing configured": ("storage: inmemory", NOTHING),
    "headers": (
        "http:\n  headers: {X-A: [a, b], X-B: one, X-C: [2], X-None: , X-Empty: []}",
        replace(NOTHING, headers={"X-A": ("a", "b"), "X-B": ("one",), "X-C": ("2",)}),
    ),
    # Both keys reach Go's Header.Add, under the one canonical name.
    "a header in two spellings": (
        "http:\n  headers: {X-A: [a], x-a: [b]}",
        replace(NOTHING, headers={"X-A": ("a", "b")}),
    ),
    "htpasswd": (AUTH_FILE, replace(NOTHING, htpasswd=Htpasswd("file realm", "/auth/htpasswd"))),
    "htpasswd empty": ("auth: htpasswd", NOTHING),
    "tls": (TLS_FILE, replace(NOTHING, tls=TLS("/tls/cert.pem", ("/tls/a.pem",), "tls1.2"))),
    "tls minimum": (
        "http:\n  tls: {certificate: c, minimumtls: tls1.3}",
        replace(NOTHING, tls=TLS("c", (), "tls1.3")),
    ),
    "tls by let's encrypt": (
        "http:\n  tls: {letsencrypt: {cachefile: /le}}",
        replace(NOTHING, tls=TLS("", (), "tls1.2")),
    ),
    # Without a certificate distribution serves plain HTTP, client CAs or not.
    "client CAs without TLS": ("http:\n  tls: {clientcas: [/a]}", NOTHING),
    "deletes": ("storage: {inmemory: , delete: {enabled: true}}", replace(NOTHING, deletes_enabled=True)),
    # distribution enables deletes only for the boolean true (handlers/app.go asserts a bool).
    "deletes as a string": ("storage: {inmemory: , delete: {enabled: 'true'}}", NOTHING),
    "read-only": (
        "storage: {inmemory: , maintenance: {readonly: {enabled: true}}}",
        replace(NOTHING, read_only=True),
    ),
    "sections of the wrong type": (
        "storage: {delete: on-sundays}\nhttp: [tls]\nauth: {htpasswd: [realm]}",
        NOTHING,
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(EXPECTATIONS.values()), ids=list(EXPECTATIONS))
def test_expectations(tmp_path: Path, text: str, expected: Expectations) -> None:
    assert expectations(read(tmp_path, text)) == expected


# -- side by side with the emulator's reader ----------------------------------------------------------

BASE = "version: 0.1\n"
TLS_KEYS = "http:\n  tls: {certificate: /tls/cert.pem, key: /tls/key.pem}\n"

#: (file, variables) both readers must agree on.
SAME: dict[str, tuple[str, dict[str, str]]] = {
    "pack registry default": (Path(emulator_config.pack_registry_default_path()).read_text(), {}),
    "pack registry default, Spectro's docker run": (
        Path(emulator_config.pack_registry_default_path()).read_text(),
        {"REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm", "REGISTRY_LOG_LEVEL": "info"},
    ),
    "tutorial config with the Dockerfile's variables": (
        BASE + "storage: inmemory\nhttp:\n  addr: :5000\n",
        {
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
            "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd-basic",
        },
    ),
    "deletes in the file": (BASE + "storage: {inmemory: , delete: {enabled: true}}", {}),
    "deletes by a variable": (BASE + "storage: inmemory", {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}),
    "deletes turned off": (
        BASE + "storage: {inmemory: , delete: {enabled: true}}",
        {"REGISTRY_STORAGE_DELETE_ENABLED": "false"},
    ),
    "storage replaced drops deletes": (
        BASE + "storage: {filesystem: {rootdirectory: /d}, delete: {enabled: true}}",
        {"REGISTRY_STORAGE": "inmemory"},
    ),
    "storage replaced then filled": (
        BASE + "storage: {filesystem: {rootdirectory: /d}}",
        {"REGISTRY_STORAGE_DELETE_ENABLED": "true", "REGISTRY_STORAGE": "inmemory"},
    ),
    "storage replaced by a mapping": (
        BASE + "storage: {filesystem: {rootdirectory: /d}}",
        {"REGISTRY_STORAGE": "{inmemory: , delete: {enabled: on}, maintenance: {readonly: {enabled: on}}}"},
    ),
    "read-only in the file": (BASE + "storage: {inmemory: , maintenance: {readonly: {enabled: true}}}", {}),
    "read-only by a mapping variable": (
        BASE + "storage: inmemory",
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}"},
    ),
    "read-only by a key variable": (
        BASE + "storage: inmemory",
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"},
    ),
    "realm changed": (
        BASE + "storage: inmemory\n" + textwrap.dedent(AUTH_FILE),
        {"REGISTRY_AUTH_HTPASSWD_REALM": "env realm"},
    ),
    "headers in the file": (BASE + "storage: inmemory\nhttp:\n  headers: {X-A: [a, b], X-B: one}", {}),
    "a header added": (
        BASE + "storage: inmemory\n" + textwrap.dedent(HEADERS_FILE),
        {"REGISTRY_HTTP_HEADERS_X-EXTRA": "[yes-really]"},
    ),
    "headers replaced": (
        BASE + "storage: inmemory\n" + textwrap.dedent(HEADERS_FILE),
        {"REGISTRY_HTTP_HEADERS": "{X-Only: [this]}"},
    ),
    "tls": (BASE + "storage: inmemory\n" + TLS_KEYS, {}),
    "tls minimum by a variable": (
        BASE + "storage: inmemory\n" + TLS_KEYS,
        {"REGISTRY_HTTP_TLS_MINIMUMTLS": "tls1.3"},
    ),
    "client CAs by index": (
        BASE + "storage: inmemory\n" + TLS_KEYS,
        {"REGISTRY_HTTP_TLS_CLIENTCAS_0": "/a.pem", "REGISTRY_HTTP_TLS_CLIENTCAS_1": "/b.pem"},
    ),
    "client CAs as a list": (
        BASE + "storage: inmemory\n" + TLS_KEYS,
        {"REGISTRY_HTTP_TLS_CLIENTCAS": "[/a.pem, /b.pem]"},
    ),
    "tls by variables only": (
        BASE + "storage: inmemory",
        {"REGISTRY_HTTP_TLS_CERTIFICATE": "/c.pem", "REGISTRY_HTTP_TLS_KEY": "/k.pem"},
    ),
}


#: Where the readers disagree, on purpose or not yet resolved: (file, variables, the field, ours, the
#: emulator's, why). Once the emulator changes, the row fails and must go.
DIFFERENCES: dict[str, tuple[str, dict[str, str], str, t.Any, t.Any]] = {
    # README, "Where the emulator differs from distribution, on purpose".
    "REGISTRY_AUTH=htpasswd over a file's htpasswd": (
        BASE + "storage: inmemory\n" + textwrap.dedent(AUTH_FILE),
        {"REGISTRY_AUTH": "htpasswd"},
        "htpasswd",
        None,
        Htpasswd("file realm", "/auth/htpasswd"),
    ),
    # In that list too: distribution's last segment sets a lower-case twin key, and Go's Header.Add sends
    # both; the emulator replaces the file's key.
    "a file's header set again in another case": (
        BASE + "storage: inmemory\n" + textwrap.dedent(HEADERS_FILE),
        {"REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[SAMEORIGIN]"},
        "headers",
        {"X-Frame-Options": ("DENY", "SAMEORIGIN")},
        {"X-Frame-Options": ("SAMEORIGIN",)},
    ),
}


def emulator_expectations(path: Path, environ: t.Mapping[str, str]) -> Expectations:
    """What the emulator's reader makes of the same file, in the terms of the checks."""
    loaded = emulator_config.load(path, environ).config
    tls, htpasswd = loaded.http.tls, loaded.auth.htpasswd
    return Expectations(
        headers={name: tuple(values) for name, values in loaded.http.headers.items() if values},
        htpasswd=None if htpasswd is None else Htpasswd(htpasswd.realm, htpasswd.path),
        tls=None if tls is None else TLS(tls.certificate or "", tls.clientcas, tls.minimumtls),
        deletes_enabled=loaded.storage.delete_enabled,
        read_only=loaded.storage.readonly,
    )


def both(tmp_path: Path, text: str, environ: dict[str, str]) -> tuple[Expectations, Expectations]:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return expectations(load_raw(str(path), environ)), emulator_expectations(path, environ)


@pytest.mark.parametrize(("text", "environ"), list(SAME.values()), ids=list(SAME))
def test_the_emulator_reads_what_the_suite_reads(tmp_path: Path, text: str, environ: dict[str, str]) -> None:
    ours, emulator = both(tmp_path, text, environ)
    assert ours == emulator


@pytest.mark.parametrize(
    ("text", "environ", "field", "ours", "emulator"), list(DIFFERENCES.values()), ids=list(DIFFERENCES)
)
def test_known_differences_from_the_emulator(
    tmp_path: Path, text: str, environ: dict[str, str], field: str, ours: t.Any, emulator: t.Any
) -> None:
    expected, emulators = both(tmp_path, text, environ)
    assert (getattr(expected, field), getattr(emulators, field)) == (ours, emulator)
    # Nothing else differs.
    assert replace(expected, **{field: emulator}) == emulators


# -- the suite never imports the emulator -------------------------------------------------------------

GUARD = """
import importlib, json, pkgutil, sys
import pytest

code = pytest.main(sys.argv[2:])
# Then every module of the suite, the ones the run did not load too.
import conformance

for module in pkgutil.iter_modules(conformance.__path__):
    importlib.import_module(f"conformance.{module.name}")
loaded = sorted(name for name in sys.modules if name.partition(".")[0] == "emulator")
with open(sys.argv[1], "w") as report:
    json.dump({"code": int(code), "emulator": loaded}, report)
"""
GUARDED_CHECKS = {
    "test_configured_headers_are_on_every_response[error]",
    "test_deletes_follow_storage_delete_enabled[blob]",
}


def test_the_suite_never_imports_the_emulator(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(BASE + "storage: inmemory\nhttp:\n  headers: {X-Guard: [on]}\n")
    # Deletes are turned on by a variable the server and the suite both see, as in a real deployment.
    shared = {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}
    report = tmp_path / "report.json"
    with RegistryProcess(config, env=shared) as server:
        command = [sys.executable, "-c", GUARD, str(report), "--pyargs", "conformance", "-rA"]
        command += ["-p", "no:cacheprovider", "-p", "no:pax_registry", "-m", "config"]
        command += [f"--pax-registry-url={server.url}", f"--pax-registry-config={config}"]
        environ = clean_environ(shared)
        environ["PYTHONPATH"] = str(Path(conformance.__file__).resolve().parents[1])
        run = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    assert report.exists(), run.stdout + run.stderr
    result = json.loads(report.read_text())
    assert result["code"] == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # The configuration was read (the variable too) and its checks ran.
    passed = set(re.findall(r"^PASSED \S*test_config\.py::(\S+)", run.stdout, re.MULTILINE))
    assert passed >= GUARDED_CHECKS, run.stdout[-4000:]
    assert result["emulator"] == []
