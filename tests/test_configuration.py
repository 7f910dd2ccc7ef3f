from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator import config
from emulator.config import ConfigError

SOURCE = "test.yml"
MINIMAL: dict[str, Any] = {"version": "0.1", "storage": {"inmemory": {}}}
TUTORIAL = "version: 0.1\nlog:\n  level: debug\nstorage: inmemory\nhttp:\n  addr: :5000\n"


def parse(
    override: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> config.LoadedConfig:
    return config.parse(config.merged(MINIMAL, override or {}), source=SOURCE, environ=environ)


def fails(override: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(override, environ)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{info.value.source}: {info.value.key}: ")
    return info.value


def pack_registry(environ: dict[str, str]) -> config.Config:
    return config.load(config.pack_registry_default_path(), environ).config


# -- version and document ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["version: 0.1", "version: '0.1'", 'version: "0.1"'])
def test_version_accepted(text: str) -> None:
    loaded = config.parse(f"{text}\nstorage: inmemory\n", source="c.yml")
    assert loaded.config.version == "0.1"
    assert loaded.config.source == "c.yml"


@pytest.mark.parametrize(
    ("text", "shown"), [("version: ''", '""'), ("version: 0.2", '"0.2"'), ("version: '1'", '"1"')]
)
def test_version_rejected(text: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(f"{text}\nstorage: inmemory\n", source="c.yml")
    assert str(info.value) == f'c.yml: version: unsupported version {shown}; must be "0.1"'


@pytest.mark.parametrize("text", ["storage: inmemory\n", "", "version:\nstorage: inmemory\n"])
def test_version_missing(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(text, source="c.yml")
    assert str(info.value) == "c.yml: version: missing (add version: 0.1)"


def test_yaml_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage:\n  inmemory: {}\n bad: [\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, {})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line ")
    assert "invalid YAML: " in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config.parse(text, source="c.yml")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        config.load(tmp_path / "missing.yml", {})


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ({"log": {"level": "loud"}}, "log.level", 'must be one of error, warn, info, debug (got "loud")'),
        ({"log": {"formatter": "xml"}}, "log.formatter", "must be one of text, json, logstash"),
        ({"log": {"accesslog": {"disabled": "sometimes"}}}, "log.accesslog.disabled", "must be a boolean"),
        ({"http": {"headers": 5}}, "http.headers", "must be a mapping"),
        ({"http": {"headers": {"X-A": {"b": 1}}}}, "http.headers.X-A", "must be a list of strings"),
        ({"storage": {"delete": {"enabled": [1]}}}, "storage.delete.enabled", "must be a boolean"),
        ({"http": {"addr": [1]}}, "http.addr", "must be a string (got a list)"),
        ({"http": {"addr": "localhost"}}, "http.addr", "missing port"),
        ({"http": {"addr": ":http"}}, "http.addr", "is not a number"),
        ({"http": {"addr": ":70000"}}, "http.addr", "out of range"),
        ({"http": {"addr": "[::1:5000"}}, "http.addr", "unbalanced brackets"),
        ({"http": {"addr": "::1]:5000"}}, "http.addr", "unbalanced brackets"),
        ({"http": {"addr": "::1:5000"}}, "http.addr", "in brackets"),
        ({"http": {"net": "udp"}}, "http.net", "must be one of tcp, unix"),
        ({"http": {"prefix": "/v1"}}, "http.prefix", "must start and end with /"),
        ({"http": {"host": "registry.example.com"}}, "http.host", "absolute URL"),
        ({"http": {"draintimeout": "soon"}}, "http.draintimeout", "must be a duration"),
        ({"http": {"relativeurls": 1}}, "http.relativeurls", "must be a boolean"),
        ({"http": {"tls": {"minimumtls": "tls9"}}}, "http.tls.minimumtls", "unknown minimum TLS level"),
        ({"http": {"tls": {"certificate": "/c.pem"}}}, "http.tls.key", "required"),
        (
            {"http": {"tls": {"certificate": "/c", "key": "/k", "letsencrypt": {"cachefile": "/d"}}}},
            "http.tls",
            "cannot specify both certificate and Let's Encrypt",
        ),
        (
            {"http": {"tls": {"letsencrypt": {"email": "a@b.c"}}}},
            "http.tls.letsencrypt.cachefile",
            "required",
        ),
        (
            {"storage": {"filesystem": {}}},
            "storage",
            "exactly one storage driver allowed, found inmemory and filesystem",
        ),
        (
            {"storage": {"azure": {"accountname": "x"}}},
            "storage.azure",
            "is set but this emulator has no azure driver (inmemory, filesystem and s3 only)",
        ),
        (
            {"storage": {"cache": {"blobdescriptor": "redis"}}},
            "storage.cache.blobdescriptor",
            "redis section",
        ),
        (
            {"storage": {"maintenance": {"uploadpurging": {"age": "a week"}}}},
            "storage.maintenance.uploadpurging.age",
            "duration",
        ),
        (
            {"storage": {"maintenance": {"readonly": True}}},
            "storage.maintenance.readonly",
            "must be a mapping",
        ),
        ({"auth": {"htpasswd": {"path": "/p"}}}, "auth.htpasswd.realm", "required"),
        ({"auth": {"htpasswd": {"realm": "r"}}}, "auth.htpasswd.path", "required"),
        ({"auth": {"token": {"realm": "r"}}}, "auth.token", "is set but this emulator implements no token"),
        ({"auth": "silly"}, "auth.silly", "implements no silly authentication (htpasswd only)"),
        ({"auth": {"ldap": {}}}, "auth", 'auth type "ldap" is not supported by this emulator'),
        (
            {"auth": {"htpasswd": {}, "token": {}}},
            "auth",
            "exactly one auth type allowed, found htpasswd and token",
        ),
        ({"auth": [1]}, "auth", "must be a mapping"),
        ({"catalog": {"maxentries": -1}}, "catalog.maxentries", "at least 0"),
    ],
)
def test_errors_name_the_key(override: dict[str, Any], key: str, fragment: str) -> None:
    error = fails(override)
    assert error.key == key
    assert error.source == "test.yml"
    assert fragment in error.problem


@pytest.mark.parametrize(
    ("storage", "problem"),
    [
        (None, "no storage driver configured; set one of inmemory, filesystem, s3"),
        ({"delete": {"enabled": True}, "cache": {}}, "no storage driver configured"),
        ({"filesystem": {}, "s3": {}}, "exactly one storage driver allowed, found filesystem and s3"),
        ({"gcs": {}}, "is set but this emulator has no gcs driver (inmemory, filesystem and s3 only)"),
        ({"filesystem": {"maxthreads": "many"}}, "must be an integer"),
        ("azure", "is set but this emulator has no azure driver"),
        (5, "must be a mapping or a driver name"),
    ],
)
def test_storage_drivers(storage: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse({"version": "0.1", "storage": storage}, source="c.yml")
    assert info.value.key.startswith("storage")
    assert problem in info.value.problem


def test_filesystem_maxthreads_is_raised_to_its_minimum() -> None:
    loaded = config.parse({"version": "0.1", "storage": {"filesystem": {"maxthreads": 3}}}, source="c.yml")
    assert loaded.config.storage.maxthreads == 25
    assert loaded.warnings == (
        "c.yml: storage.filesystem.maxthreads: 3 is below the minimum of 25; using 25",
    )


@pytest.mark.parametrize(
    ("s3", "key", "fragment"),
    [
        ({"region": None}, "storage.s3.region", "required"),
        ({"bucket": ""}, "storage.s3.bucket", "required"),
        ({"chunksize": 5 * config.MiB - 1}, "storage.s3.chunksize", "between"),
        ({"chunksize": 5 * config.GiB + 1}, "storage.s3.chunksize", "between"),
        ({"port": 0}, "storage.s3.port", "between 1 and 65535"),
        ({"port": 65536}, "storage.s3.port", "between 1 and 65535"),
        ({"port": "http"}, "storage.s3.port", "must be an integer"),
        ({"secure": "yes please"}, "storage.s3.secure", "must be a boolean"),
    ],
)
def test_s3_errors(s3: dict[str, Any], key: str, fragment: str) -> None:
    params = {
        key: value for key, value in {"region": "us-east-1", "bucket": "b", **s3}.items() if value is not None
    }
    document = {"version": "0.1", "storage": {"s3": params}}
    with pytest.raises(ConfigError) as info:
        config.parse(document, source="c.yml")
    assert info.value.key == key
    assert fragment in str(info.value)


# -- values ----------------------------------------------------------------------------------------


def test_defaults_of_a_minimal_document() -> None:
    loaded = parse()
    c = loaded.config
    assert (c.log.level, c.log.formatter, c.log.fields, c.log.accesslog_disabled) == (
        "info",
        "text",
        {},
        False,
    )
    assert c.storage.driver == "inmemory"
    assert (c.storage.delete_enabled, c.storage.readonly, c.storage.blobdescriptor) == (False, False, None)
    assert c.storage.uploadpurging == config.UploadPurgingConfig(True, 7 * 24 * 3600.0, 24 * 3600.0, False)
    assert c.http == config.HTTPConfig()
    assert c.http.headers == {}
    assert c.auth.htpasswd is None
    assert (c.redis, c.catalog_maxentries, c.tags_maxtags) == (None, 1000, 1000)
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("addr", "host", "port"),
    [
        (":5000", "", 5000),
        ("0.0.0.0:5000", "0.0.0.0", 5000),
        ("127.0.0.1:5000", "127.0.0.1", 5000),
        ("[::1]:5000", "::1", 5000),
        ("localhost:5000", "localhost", 5000),
        ("127.0.0.1:0", "127.0.0.1", 0),
    ],
)
def test_http_addr_forms(addr: str, host: str, port: int) -> None:
    http = parse({"http": {"addr": addr}}).config.http
    assert (http.listen_host(), http.listen_port()) == (host, port)


def test_unix_socket_addr() -> None:
    http = parse({"http": {"net": "unix", "addr": "/run/registry.sock"}}).config.http
    assert (http.net, http.addr) == ("unix", "/run/registry.sock")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300ms", 0.3),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("168h", 604800.0),
        ("1.5h", 5400.0),
        (7, 7.0),
        ("0", 0.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse({"http": {"draintimeout": text}}).config.http.draintimeout == pytest.approx(seconds)


def test_typed_values() -> None:
    c = parse(
        {
            "log": {
                "level": "DEBUG",
                "formatter": "json",
                "fields": {"service": "r"},
                "accesslog": {"disabled": "TRUE"},
            },
            "storage": {
                "delete": {"enabled": True},
                "redirect": {"disable": True},
                "cache": {"layerinfo": "inmemory", "blobdescriptorsize": 5},
                "maintenance": {
                    "uploadpurging": {"enabled": False, "age": "1h", "interval": "10m", "dryrun": "False"},
                    "readonly": {"enabled": True},
                },
            },
            "http": {
                "prefix": "/v1/",
                "host": "https://r.example.com",
                "secret": 123,
                "headers": {"X-One": "a", "X-Two": ["b", "c"]},
                "http2": {"disabled": True},
                "tls": {
                    "certificate": "/c.pem",
                    "key": "/k.pem",
                    "clientcas": ["/ca.pem"],
                    "minimumtls": "tls1.3",
                },
            },
            "catalog": {"maxentries": 5},
        }
    ).config
    assert (c.log.level, c.log.formatter, c.log.fields, c.log.accesslog_disabled) == (
        "debug",
        "json",
        {"service": "r"},
        True,
    )
    s = c.storage
    assert (s.delete_enabled, s.redirect_disable, s.readonly, s.blobdescriptor, s.blobdescriptorsize) == (
        True,
        True,
        True,
        "inmemory",
        5,
    )
    assert s.uploadpurging == config.UploadPurgingConfig(False, 3600.0, 600.0, False)
    assert c.http.headers == {"X-One": ("a",), "X-Two": ("b", "c")}
    assert (c.http.prefix, c.http.host, c.http.secret, c.http.http2_disabled) == (
        "/v1/",
        "https://r.example.com",
        "123",
        True,
    )
    assert c.http.tls == config.TLSConfig("/c.pem", "/k.pem", ("/ca.pem",), "tls1.3")
    assert c.catalog_maxentries == 5


def test_filesystem_and_s3() -> None:
    fs = config.parse({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/d"}}}, source="c").config
    assert (fs.storage.driver, fs.storage.rootdirectory, fs.storage.maxthreads) == ("filesystem", "/d", 100)
    doc = {
        "version": "0.1",
        "storage": {"s3aws": {"region": "us-east-1", "bucket": "b", "port": 9000, "secure": "false"}},
    }
    s3 = config.parse(doc, source="c").config.storage
    assert s3.driver == "s3"
    assert s3.s3 is not None
    assert (s3.s3.region, s3.s3.bucket, s3.s3.port, s3.s3.secure, s3.s3.chunksize) == (
        "us-east-1",
        "b",
        9000,
        False,
        10 * config.MiB,
    )


def test_letsencrypt_turns_tls_on() -> None:
    tls = parse(
        {"http": {"tls": {"letsencrypt": {"cachefile": "/le", "hosts": ["a.example"]}}}}
    ).config.http.tls
    assert tls is not None and tls.letsencrypt is not None
    assert (tls.certificate, tls.letsencrypt.hosts) == (None, ("a.example",))
    assert tls.letsencrypt.directoryurl == "https://acme-v02.api.letsencrypt.org/directory"
    assert parse({"http": {"tls": {"minimumtls": "tls1.3"}}}).config.http.tls is None


@pytest.mark.parametrize("auth", [None, {}, "none", {"none": {}}])
def test_no_auth(auth: Any) -> None:
    assert parse({"auth": auth}).config.auth.htpasswd is None


def test_redis_cache() -> None:
    c = parse(
        {
            "redis": {"addr": "localhost:6379", "dialtimeout": "10ms"},
            "storage": {"cache": {"blobdescriptor": "redis"}},
        }
    )
    assert c.config.storage.blobdescriptor == "redis"
    assert c.config.redis is not None and c.config.redis.dialtimeout == pytest.approx(0.01)


# -- warnings ----------------------------------------------------------------------------------------


def test_unknown_keys_warn() -> None:
    loaded = parse(
        {
            "storage": {"inmemory": {"x": 1}},
            "bogus": 1,
            "http": {"tls": {"nope": True}},
            "log": {"colour": "red"},
        }
    )
    assert set(loaded.warnings) == {
        "test.yml: unknown key storage.inmemory.x (ignored)",
        "test.yml: unknown key bogus (ignored)",
        "test.yml: unknown key http.tls.nope (ignored)",
        "test.yml: unknown key log.colour (ignored)",
    }


def test_unknown_driver_parameter_warns() -> None:
    doc = {"version": "0.1", "storage": {"filesystem": {"rootdir": "/x"}}}
    assert config.parse(doc, source="config.yml").warnings == (
        "config.yml: unknown key storage.filesystem.rootdir (ignored)",
    )


def test_known_but_ignored_sections_do_not_warn() -> None:
    ignored = {
        "compatibility": {"schema1": {"signingkeyfile": "/key.json", "enabled": False}},
        "loglevel": "info",
        "catalog": {"maxentries": 10},
        "tags": {"maxtags": 10},
        "http": {
            "http2": {"disabled": False},
            "debug": {"addr": ":5001", "prometheus": {"enabled": True}},
            "tls": {"clientauth": "require-and-verify-client-cert"},
        },
        "log": {"reportcaller": True},
        "storage": {"tag": {"concurrencylimit": 8}},
    }
    assert parse(ignored).warnings == ()
    s3 = {"version": "0.1", "storage": {"s3": {"region": "r", "bucket": "b", "accelerate": True}}}
    assert config.parse(s3, source="c.yml").warnings == ()


def test_unknown_cache_type_warns_and_disables() -> None:
    loaded = parse({"storage": {"cache": {"blobdescriptor": "memcached"}}})
    assert loaded.config.storage.blobdescriptor is None
    assert loaded.warnings == (
        'test.yml: storage.cache.blobdescriptor: unknown cache type "memcached", caching disabled',
    )


# -- environment overrides ------------------------------------------------------------------------------


def test_env_log_level() -> None:
    assert parse(environ={"REGISTRY_LOG_LEVEL": "debug"}).config.log.level == "debug"
    assert parse(environ=None).config.log.level == "info"


def test_env_error_names_file_key_and_variable() -> None:
    error = fails({}, {"REGISTRY_LOG_LEVEL": "loud"})
    assert str(error) == (
        'test.yml: log.level: must be one of error, warn, info, debug (got "loud" from REGISTRY_LOG_LEVEL)'
    )


def test_env_storage_replaces_the_section() -> None:
    c = parse({"storage": {"delete": {"enabled": True}}}, {"REGISTRY_STORAGE": "inmemory"}).config
    assert (c.storage.driver, c.storage.delete_enabled) == ("inmemory", False)
    c = parse({}, {"REGISTRY_STORAGE": "inmemory", "REGISTRY_STORAGE_DELETE_ENABLED": "true"}).config
    assert c.storage.delete_enabled is True


def test_env_storage_s3() -> None:
    environ = {
        "REGISTRY_STORAGE": "s3",
        "REGISTRY_STORAGE_S3_REGION": "us-east-1",
        "REGISTRY_STORAGE_S3_BUCKET": "b",
    }
    loaded = parse({"storage": {"cache": {"blobdescriptor": "inmemory"}}}, environ)
    assert loaded.config.storage.s3 is not None and loaded.config.storage.s3.bucket == "b"
    assert loaded.config.storage.blobdescriptor is None
    error = fails({}, {"REGISTRY_STORAGE": "s3"})
    assert str(error) == "test.yml: storage.s3.region: required (from REGISTRY_STORAGE)"


def test_env_second_driver_is_an_error() -> None:
    document = "version: 0.1\nstorage:\n  filesystem: {}\n"
    with pytest.raises(ConfigError) as info:
        config.parse(document, source="config.yml", environ={"REGISTRY_STORAGE_S3_BUCKET": "b"})
    assert str(info.value) == (
        "config.yml: storage: exactly one storage driver allowed, found filesystem and s3"
        " (s3 from REGISTRY_STORAGE_S3_BUCKET)"
    )


def test_env_http() -> None:
    environ = {
        "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
        "REGISTRY_HTTP_SECRET": "123",
        "REGISTRY_HTTP_RELATIVEURLS": "true",
        "REGISTRY_HTTP_HEADERS_X-CUSTOM": "yes",
        "REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[SAMEORIGIN]",
    }
    loaded = parse({"http": {"headers": {"X-Frame-Options": ["DENY"]}}}, environ)
    http = loaded.config.http
    assert (http.listen_port(), http.secret, http.relativeurls) == (6000, "123", True)
    assert http.headers == {"X-Frame-Options": ("SAMEORIGIN",), "x-custom": ("yes",)}


def test_delete_enabled_by_a_string_stays_off_as_in_distribution() -> None:
    loaded = parse({"storage": {"delete": {"enabled": "true"}}})
    assert loaded.config.storage.delete_enabled is False
    assert any("storage.delete.enabled: a string, not a boolean" in w for w in loaded.warnings)
    environ = {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}  # variables are YAML: this one is a boolean
    assert parse(None, environ).config.storage.delete_enabled is True


def test_maxconnections_default_file_and_env() -> None:
    assert parse().config.http.maxconnections == 1000
    assert parse({"http": {"maxconnections": 50}}).config.http.maxconnections == 50
    loaded = parse({"http": {"maxconnections": 50}}, {"REGISTRY_HTTP_MAXCONNECTIONS": "7"})
    assert loaded.config.http.maxconnections == 7
    assert not loaded.warnings  # our extension is a known key


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_maxconnections_must_be_a_positive_integer(value: Any) -> None:
    error = fails({"http": {"maxconnections": value}})
    assert error.key == "http.maxconnections"


@pytest.mark.parametrize(
    "environ",
    [
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}"},
        {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"},
        {"REGISTRY_STORAGE_MAINTENANCE": "{readonly: {enabled: true}}"},
    ],
)
def test_env_readonly(environ: dict[str, str]) -> None:
    assert parse(environ=environ).config.storage.readonly is True


def test_env_uploadpurging() -> None:
    environ = {
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED": "false",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
    }
    purging = parse(environ=environ).config.storage.uploadpurging
    assert (purging.enabled, purging.age) == (False, 7200.0)


def test_env_list_index() -> None:
    environ = {
        "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE": "/le",
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_0": "a.example",
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_1": "b.example",
    }
    tls = parse(environ=environ).config.http.tls
    assert tls is not None and tls.letsencrypt is not None
    assert tls.letsencrypt.hosts == ("a.example", "b.example")
    over = {"http": {"tls": {"letsencrypt": {"cachefile": "/le", "hosts": ["old.example", "keep.example"]}}}}
    tls = parse(over, {"REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_0": "new.example"}).config.http.tls
    assert tls is not None and tls.letsencrypt is not None
    assert tls.letsencrypt.hosts == ("new.example", "keep.example")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_5", "undefined index 5"),
        ("REGISTRY_HTTP_TLS_CLIENTCAS_FIRST", "non-numeric index"),
    ],
)
def test_env_bad_list_index(name: str, problem: str) -> None:
    error = fails({}, {name: "x"})
    assert error.source == SOURCE
    assert problem in error.problem
    assert name in error.problem


def test_env_htpasswd_path() -> None:
    c = parse(
        {"auth": {"htpasswd": {"realm": "r", "path": "/a"}}}, {"REGISTRY_AUTH_HTPASSWD_PATH": "/b"}
    ).config
    assert c.auth.htpasswd == config.HtpasswdConfig("r", "/b")


def test_spectro_docker_run_example_keeps_the_files_htpasswd_path() -> None:
    environ = {
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "My Enterprise Realm",
    }
    c = pack_registry(environ)
    assert c.auth.htpasswd == config.HtpasswdConfig("My Enterprise Realm", "/auth/htpasswd-basic")
    assert c.log.level == "debug"
    assert (c.storage.driver, c.storage.rootdirectory) == ("filesystem", "/data/.spectro-server")


def test_tutorial_dockerfile() -> None:
    environ = {
        "REGISTRY_LOG_LEVEL": "info",
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd-basic",
    }
    loaded = config.parse(TUTORIAL, source="registry-config.yml", environ=environ)
    c = loaded.config
    assert c.log.level == "info"
    assert c.auth.htpasswd == config.HtpasswdConfig("Registry Realm", "/auth/htpasswd-basic")
    assert (c.storage.driver, c.http.addr) == ("inmemory", ":5000")
    assert loaded.raw["auth"] == {"htpasswd": {"realm": "Registry Realm", "path": "/auth/htpasswd-basic"}}


def test_env_other_auth_type_drops_the_old_one() -> None:
    with pytest.raises(ConfigError) as info:
        pack_registry({"REGISTRY_AUTH": "token"})
    assert info.value.key == "auth.token"
    assert info.value.problem.endswith("(remove the section) (from REGISTRY_AUTH)")
    assert pack_registry({"REGISTRY_AUTH": "none"}).auth.htpasswd is None


def test_env_unrecognized_variables_warn() -> None:
    environ = {
        "REGISTRY_FOO": "1",
        "REGISTRY_LOG_COLOUR": "red",
        "REGISTRY_REDIS_NOPE_DEEPER": "1",
        "REGISTRY_LOG_LEVEL_X": "1",
        "REGISTRY_CONFIGURATION_PATH": "/ignored.yml",
        "OTHER": "x",
    }
    loaded = parse(environ=environ)
    assert loaded.warnings == tuple(
        f"ignoring unrecognized environment variable {name}"
        for name in [
            "REGISTRY_FOO",
            "REGISTRY_LOG_COLOUR",
            "REGISTRY_LOG_LEVEL_X",
            "REGISTRY_REDIS_NOPE_DEEPER",
        ]
    )
    assert "redis" not in loaded.raw


def test_env_free_form_sections() -> None:
    environ = {
        "REGISTRY_LOG_FIELDS_ENV": "prod",
        "REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES": "true",
    }
    loaded = parse(environ=environ)
    assert loaded.config.log.fields == {"env": "prod"}
    assert loaded.raw["notifications"] == {"events": {"includereferences": True}}


def test_env_invalid_yaml_value() -> None:
    name = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
    error = fails({}, {name: "{enabled: true"})
    assert (error.source, error.key) == (SOURCE, "storage.maintenance.readonly")
    assert error.problem.startswith("invalid YAML value: ")
    assert error.problem.endswith(f"(from {name})")


def test_env_string_values_need_not_be_yaml() -> None:
    http = parse(
        environ={"REGISTRY_HTTP_SECRET": "%{not yaml", "REGISTRY_HTTP_HOST": "https://h.example"}
    ).config.http
    assert (http.secret, http.host) == ("%{not yaml", "https://h.example")


def test_env_version_stays_a_string() -> None:
    assert parse(environ={"REGISTRY_VERSION": "0.1"}).config.version == "0.1"
    assert "unsupported version" in str(fails({}, {"REGISTRY_VERSION": "0.2"}))


# -- helpers ---------------------------------------------------------------------------------------


def test_redacted() -> None:
    raw: dict[str, Any] = {
        "http": {"secret": "s", "addr": ":5000"},
        "storage": {"s3": {"accesskey": "a", "secretkey": "k", "region": "r"}},
        "redis": {"password": "p"},
        "auth": {"token": {"password": "x", "realm": "r"}},
        "notifications": {"endpoints": [{"token": "t", "name": "n"}]},
    }
    hidden = config.redacted(raw)
    text = config.dump(hidden)
    for secret in ("s", "a", "k", "p", "x", "t"):
        assert f": {secret}\n" not in text
    assert hidden["http"] == {"secret": "<redacted>", "addr": ":5000"}
    assert hidden["notifications"]["endpoints"][0] == {"token": "<redacted>", "name": "n"}
    assert raw["http"]["secret"] == "s"


def test_dump_round_trips_in_order() -> None:
    raw = config.load(config.pack_registry_default_path(), {}).raw
    text = config.dump(raw)
    assert yaml.safe_load(text) == raw
    assert text.index("version") < text.index("log") < text.index("storage")


def test_merged() -> None:
    base: dict[str, Any] = {"a": {"b": 1, "c": [1]}, "d": 1}
    result = config.merged(base, {"a": {"c": [2], "e": {"f": 1}}, "d": {"x": 1}})
    assert result == {"a": {"b": 1, "c": [2], "e": {"f": 1}}, "d": {"x": 1}}
    result["a"]["b"] = 5
    assert base["a"]["b"] == 1


def test_load_uses_configuration_path_then_development_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(TUTORIAL)
    loaded = config.load(None, {"REGISTRY_CONFIGURATION_PATH": str(path)})
    assert (loaded.config.source, loaded.config.log.level) == (str(path), "debug")
    dev = config.load(None, {})
    assert dev.config.source == config.DEV_DEFAULT_SOURCE
    assert dev.raw == config.development_default()


def test_development_default() -> None:
    c = config.load(None, {}).config
    assert (c.storage.driver, c.storage.delete_enabled, c.storage.blobdescriptor) == (
        "inmemory",
        True,
        "inmemory",
    )
    assert (c.http.listen_host(), c.http.listen_port(), c.auth.htpasswd) == ("127.0.0.1", 5000, None)
    assert len(c.http.headers) == 6


def test_pack_registry_default() -> None:
    loaded = config.load(config.pack_registry_default_path(), {})
    c = loaded.config
    assert loaded.warnings == ()
    assert c.auth.htpasswd == config.HtpasswdConfig("basic-realm", "/auth/htpasswd-basic")
    assert c.http.headers["Content-Security-Policy"] == (
        "img-src 'self'; script-src 'self';  style-src 'self",
    )
    assert c.http.headers["X-XSS-Protection"] == ("1; mode=block",)
    assert c.storage.blobdescriptor == "inmemory"


def test_config_is_frozen() -> None:
    c = parse().config
    with pytest.raises(AttributeError):
        c.version = "0.2"  # type: ignore[misc]


# -- mistakes named as such --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "environ", "problem"),
    [
        (
            {"inmemory": {}},
            {"REGISTRY_STORAGE_DELTE_ENABLED": "true"},
            "unknown key storage.delte (did you mean storage.delete?) (from REGISTRY_STORAGE_DELTE_ENABLED)",
        ),
        ({"inmemory": {}, "maintainance": {}}, {}, "unknown key storage.maintainance (did you mean "),
        ({"filesytem": {}}, {}, "unknown key storage.filesytem (did you mean storage.filesystem?)"),
        ({"inmemory": {}, "zzz": {}}, {}, "unknown key storage.zzz"),
    ],
)
def test_unknown_storage_keys_are_named(
    storage: dict[str, Any], environ: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse({"version": "0.1", "storage": storage}, source="c.yml", environ=environ)
    assert info.value.key == "storage"
    assert info.value.problem.startswith(problem)


# -- header values keep their text -------------------------------------------------------------------


HEADER_FILE = """\
version: 0.1
storage: inmemory
http:
  headers:
    X-Custom: [yes]
    X-Flags: [no, on, off, true, 1.10, 0x1F, 2001-12-14]
    X-Bare: yes
    X-Quoted: ["yes"]
"""


def test_header_values_are_the_text_written() -> None:
    headers = config.parse(HEADER_FILE, source="c.yml").config.http.headers
    assert headers == {
        "X-Custom": ("yes",),
        "X-Flags": ("no", "on", "off", "true", "1.10", "0x1F", "2001-12-14"),
        "X-Bare": ("yes",),
        "X-Quoted": ("yes",),
    }


def test_only_header_values_keep_their_text() -> None:
    loaded = config.parse(HEADER_FILE + "log:\n  fields: {flag: yes}\n", source="c.yml")
    assert loaded.config.log.fields == {"flag": True}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REGISTRY_HTTP_HEADERS_X-CUSTOM", "[yes, off]", {"X-Custom": ("yes", "off")}),
        ("REGISTRY_HTTP_HEADERS_X-CUSTOM", "on", {"X-Custom": ("on",)}),
        ("REGISTRY_HTTP_HEADERS", "{X-New: [no, 1.50]}", {"X-New": ("no", "1.50")}),
    ],
)
def test_header_values_from_the_environment_are_the_text_written(
    name: str, value: str, expected: dict[str, tuple[str, ...]]
) -> None:
    headers = config.parse(HEADER_FILE, source="c.yml", environ={name: value}).config.http.headers
    assert {key: headers[key] for key in expected} == expected


def test_a_null_header_value_is_still_refused() -> None:
    with pytest.raises(ConfigError) as info:
        config.parse("version: 0.1\nstorage: inmemory\nhttp:\n  headers: {X-A: [~]}\n", source="c.yml")
    assert info.value.key == "http.headers.X-A"


def test_development_default_content_security_policy_is_balanced() -> None:
    (policy,) = config.load(None, {}).config.http.headers["Content-Security-Policy"]
    assert policy == "img-src 'self'; script-src 'self'; style-src 'self'"
    for directive in policy.split(";"):
        assert directive.count("'") % 2 == 0, directive


# -- the settings in effect --------------------------------------------------------------------------


#: Every section, with values other than the defaults (and the keys distribution still takes under older
#: names): the settings in effect must read back the same, and the reader must take each of its branches.
EVERY_SECTION = """\
version: 0.1
loglevel: debug
log: {formatter: json, fields: {a: 1}, accesslog: {disabled: true}}
storage:
  s3: {region: r, bucket: b, accesskey: AK, secretkey: SK, port: 9000, regionendpoint: "http://s3:9000",
       host: h, keyid: k, useragent: u}
  cache: {blobdescriptor: redis, blobdescriptorsize: 5}
  delete: {enabled: true}
  redirect: {disable: true}
  maintenance:
    uploadpurging: {enabled: false, age: 90m, interval: 1.5s, dryrun: true}
    readonly: {enabled: true}
http:
  addr: "[::1]:0"
  prefix: /reg/
  host: https://registry.example
  relativeurls: true
  secret: hush
  draintimeout: 250ms
  maxconnections: 7
  headers: {X-A: [yes]}
  tls:
    letsencrypt: {cachefile: /le, email: a@b.c, hosts: [h.example], http01addr: ":80"}
    minimumtls: tls1.3
    clientcas: [/ca.pem]
  http2: {disabled: true}
  debug: {addr: "127.0.0.1:0", prometheus: {enabled: true, path: /m}}
auth: {htpasswd: {realm: r, path: /h}}
redis:
  addr: localhost:6379
  password: pw
  db: 2
  dialtimeout: 1s
  pool: {maxidle: 1, maxactive: 2, idletimeout: 1h1m1s}
catalog: {maxentries: 5}
tags: {maxtags: 6}
notifications:
  events: {includereferences: true}
  endpoints:
    - {name: a, url: "http://hook.example/a", headers: {Authorization: [Bearer x]}, timeout: 2s,
       threshold: 3, backoff: 250ms, ignoredmediatypes: [m1], ignore: {mediatypes: [m2], actions: [pull]},
       queuesize: 5}
    - {name: b, disabled: true}
health:
  storagedriver: {enabled: true, interval: 5s, threshold: 2}
  file: [{file: /down}]
  http: [{uri: "http://up.example/", headers: {X-H: [v]}, statuscode: 204, timeout: 1s, threshold: 1}]
  tcp: [{addr: "db:5432", timeout: 3s, interval: 1m}]
proxy: {remoteurl: "https://upstream.example", username: u, password: p, ttl: 0}
validation:
  enabled: false
  disabled: true
  manifests: {urls: {allow: ["^https://"], deny: ["evil"]}}
  packs: {enabled: true, floatingtags: true}
"""

EFFECTIVE_CASES = {
    "development default": (None, {}),
    "pack registry": (config.pack_registry_default_path(), {}),
    "tutorial": (TUTORIAL, {}),
    "everything": (
        EVERY_SECTION,
        {"REGISTRY_HTTP_MAXCONNECTIONS": "9", "REGISTRY_HTTP_DEBUG_ADDR": "127.0.0.1:5001"},
    ),
    "filesystem and a certificate": (
        "version: 0.1\nstorage: {filesystem: {rootdirectory: /d, maxthreads: 30}}\n"
        "http: {net: unix, addr: /run/r.sock, tls: {certificate: /c.pem, key: /k.pem}}\n",
        {},
    ),
}


@pytest.mark.parametrize(("source", "environ"), list(EFFECTIVE_CASES.values()), ids=list(EFFECTIVE_CASES))
def test_the_settings_in_effect_read_back_the_same(
    tmp_path: Path, source: str | None, environ: dict[str, str]
) -> None:
    path: str | None = source
    if source is not None and "\n" in source:
        path = str(tmp_path / "config.yml")
        Path(path).write_text(source)
    loaded = config.load(path, environ)
    shown = config.dump(config.effective(loaded.config))
    again = config.parse(shown, source=loaded.config.source, environ={})
    assert again.config == loaded.config
    assert again.warnings == ()


def test_the_settings_in_effect_show_defaults() -> None:
    shown = config.effective(config.parse(MINIMAL, source="c.yml").config)
    assert shown["http"]["addr"] == ":5000"
    assert shown["auth"] == {}
    assert shown["storage"]["delete"] == {"enabled": False}
    assert shown["http"]["maxconnections"] == 1000


def test_the_settings_in_effect_redacted() -> None:
    loaded = config.parse(
        {**MINIMAL, "http": {"secret": "hush"}, "redis": {"addr": "r:6379", "password": "pw"}}, source="c.yml"
    )
    text = config.dump(config.redacted(config.effective(loaded.config)))
    assert "hush" not in text and "pw" not in text
    assert text.count("<redacted>") == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (90, "1m30s"), (3661, "1h1m1s"), (168 * 3600, "168h"), (1e-6, "1000ns")],
)
def test_go_duration(seconds: float, text: str) -> None:
    from emulator.config.effective import go_duration

    assert go_duration(seconds) == text


# -- notifications, debug server, health checks, proxy, validation --------------------------------------


def test_new_sections_default_to_off() -> None:
    loaded = parse()
    cfg = loaded.config
    assert cfg.notifications == config.NotificationsConfig()
    assert cfg.http.debug == config.DebugConfig(
        addr="", prometheus=config.PrometheusConfig(False, "/metrics")
    )
    assert cfg.health == config.HealthConfig()
    assert cfg.proxy is None
    assert cfg.validation == config.ValidationConfig(enabled=True, allow=(), deny=())
    assert cfg.validation.packs == config.PackValidationConfig(enabled=False, floatingtags=False)
    assert loaded.warnings == ()


def test_notification_endpoints() -> None:
    notifications = parse(
        {
            "notifications": {
                "events": {"includereferences": True},
                "endpoints": [
                    {
                        "name": "hook",
                        "url": "https://hook.example/events",
                        "headers": {"Authorization": ["Bearer t"], "X-Flag": ["yes", "on"]},
                        "timeout": "500ms",
                        "threshold": 3,
                        "backoff": "2s",
                        "ignoredmediatypes": ["a/b", "c/d"],
                        "ignore": {"mediatypes": ["c/d", "e/f"], "actions": ["pull", "mount"]},
                        "queuesize": 50,
                    },
                    {"name": "off", "disabled": True},
                ],
            }
        }
    ).config.notifications
    assert notifications.includereferences is True
    hook, off = notifications.endpoints
    assert hook == config.EndpointConfig(
        name="hook",
        url="https://hook.example/events",
        headers={"Authorization": ("Bearer t",), "X-Flag": ("yes", "on")},
        timeout=0.5,
        threshold=3,
        backoff=2.0,
        ignoredmediatypes=("a/b", "c/d", "e/f"),
        ignoredactions=("pull", "mount"),
        disabled=False,
        queuesize=50,
    )
    assert off == config.EndpointConfig(name="off", url="", disabled=True)


@pytest.mark.parametrize("value", [0, "0s", "-1s", -3])
def test_notification_zero_or_less_means_the_default(value: Any) -> None:
    endpoint = {"name": "e", "url": "http://h", "timeout": value, "backoff": value, "threshold": value}
    if isinstance(value, str):
        endpoint["threshold"] = 0
    (parsed,) = parse({"notifications": {"endpoints": [endpoint]}}).config.notifications.endpoints
    assert (parsed.timeout, parsed.threshold, parsed.backoff) == (1.0, 10, 1.0)


@pytest.mark.parametrize(
    ("endpoint", "key", "fragment"),
    [
        ({"url": "http://h"}, "notifications.endpoints.0.name", "required"),
        ({"name": "e"}, "notifications.endpoints.0.url", "required"),
        ({"name": "e", "url": "hook.example/x"}, "notifications.endpoints.0.url", "absolute http or https"),
        ({"name": "e", "url": "ftp://h/x"}, "notifications.endpoints.0.url", "absolute http or https"),
        (
            {"name": "e", "url": "http://h", "timeout": "soon"},
            "notifications.endpoints.0.timeout",
            "duration",
        ),
        (
            {"name": "e", "url": "http://h", "threshold": "x"},
            "notifications.endpoints.0.threshold",
            "integer",
        ),
        (
            {"name": "e", "url": "http://h", "queuesize": 0},
            "notifications.endpoints.0.queuesize",
            "at least 1",
        ),
        ({"name": "e", "url": "http://h", "headers": ["a"]}, "notifications.endpoints.0.headers", "mapping"),
        (
            {"name": "e", "url": "http://h", "ignore": {"actions": ["push", "put"]}},
            "notifications.endpoints.0.ignore.actions.1",
            "must be one of push, pull, mount, delete",
        ),
        (
            {"name": "e", "url": "http://h", "disabled": "maybe"},
            "notifications.endpoints.0.disabled",
            "boolean",
        ),
        ("just a url", "notifications.endpoints.0", "must be a mapping"),
    ],
)
def test_notification_endpoint_errors(endpoint: Any, key: str, fragment: str) -> None:
    error = fails({"notifications": {"endpoints": [endpoint]}})
    assert (error.source, error.key) == (SOURCE, key)
    assert fragment in error.problem


def test_notification_endpoints_must_be_a_list() -> None:
    error = fails({"notifications": {"endpoints": {"name": "e"}}})
    assert (error.key, error.problem) == ("notifications.endpoints", "must be a list (got a mapping)")


def test_notification_header_values_are_the_text_written() -> None:
    text = "version: 0.1\nstorage: inmemory\nnotifications:\n  endpoints:\n"
    text += "    - {name: e, url: 'http://h', headers: {X-A: [yes, 1.10]}}\n"
    text += "health:\n  http:\n    - {uri: 'http://h', headers: {X-B: [off]}}\n"
    loaded = config.parse(text, source="c.yml").config
    assert loaded.notifications.endpoints[0].headers == {"X-A": ("yes", "1.10")}
    assert loaded.health.http[0].headers == {"X-B": ("off",)}


def test_env_notification_endpoints_as_yaml_and_by_index() -> None:
    environ = {
        "REGISTRY_NOTIFICATIONS_ENDPOINTS": "[{name: e, url: 'http://h/1'}]",
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT": "3s",
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_IGNORE_ACTIONS": "[pull]",
        "REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES": "true",
    }
    loaded = parse(environ=environ)
    (endpoint,) = loaded.config.notifications.endpoints
    assert (endpoint.name, endpoint.url, endpoint.timeout) == ("e", "http://h/1", 3.0)
    assert endpoint.ignoredactions == ("pull",)
    assert loaded.config.notifications.includereferences is True
    assert loaded.warnings == ()


def test_env_notification_error_names_the_variable() -> None:
    error = fails({}, {"REGISTRY_NOTIFICATIONS_ENDPOINTS": "[{name: e, url: nowhere}]"})
    assert error.key == "notifications.endpoints.0.url"
    assert error.problem.endswith("from REGISTRY_NOTIFICATIONS_ENDPOINTS)")


def test_debug_server() -> None:
    debug = parse(
        {"http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True, "path": "/m"}}}}
    ).config.http.debug
    assert debug == config.DebugConfig(addr="127.0.0.1:0", prometheus=config.PrometheusConfig(True, "/m"))
    empty_path = {"http": {"debug": {"prometheus": {"enabled": True, "path": ""}}}}
    assert parse(empty_path).config.http.debug.prometheus.path == "/metrics"


def test_env_debug_server() -> None:
    environ = {"REGISTRY_HTTP_DEBUG_ADDR": ":5001", "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED": "true"}
    debug = parse(environ=environ).config.http.debug
    assert (debug.addr, debug.prometheus.enabled) == (":5001", True)


@pytest.mark.parametrize(
    ("debug", "key", "fragment"),
    [
        ({"addr": "5001"}, "http.debug.addr", "missing port"),
        ({"addr": ":99999"}, "http.debug.addr", "out of range"),
        ({"prometheus": {"path": "metrics"}}, "http.debug.prometheus.path", "must start with /"),
        ({"prometheus": {"enabled": "sure"}}, "http.debug.prometheus.enabled", "boolean"),
    ],
)
def test_debug_server_errors(debug: dict[str, Any], key: str, fragment: str) -> None:
    error = fails({"http": {"debug": debug}})
    assert error.key == key and fragment in error.problem


def test_health_checks() -> None:
    health = parse(
        {
            "health": {
                "storagedriver": {"enabled": True, "interval": "0s", "threshold": 3},
                "file": [{"file": "/tmp/down", "interval": "1s"}],
                "http": [
                    {
                        "uri": "http://up.example/ping",
                        "headers": {"X-A": ["b"]},
                        "statuscode": 0,
                        "timeout": "2s",
                        "threshold": 2,
                    }
                ],
                "tcp": [{"addr": "localhost:6379", "timeout": "1s", "interval": "30s"}],
            }
        }
    ).config.health
    assert health.storagedriver == config.StorageDriverCheck(enabled=True, interval=10.0, threshold=3)
    assert health.file == (config.FileCheck(file="/tmp/down", interval=1.0),)
    assert health.http == (
        config.HTTPCheck(
            uri="http://up.example/ping",
            headers={"X-A": ("b",)},
            statuscode=200,
            timeout=2.0,
            interval=10.0,
            threshold=2,
        ),
    )
    assert health.tcp == (config.TCPCheck(addr="localhost:6379", timeout=1.0, interval=30.0, threshold=0),)


def test_health_file_threshold_is_ignored_with_a_warning() -> None:
    loaded = parse({"health": {"file": [{"file": "/x", "threshold": 3}]}})
    assert loaded.warnings == (
        "test.yml: health.file.0.threshold: ignored, as in distribution: a file check fails at once",
    )


@pytest.mark.parametrize(
    ("health", "key", "fragment"),
    [
        ({"storagedriver": {"interval": "-1s"}}, "health.storagedriver.interval", "must not be negative"),
        ({"storagedriver": {"threshold": -1}}, "health.storagedriver.threshold", "at least 0"),
        ({"file": [{"interval": "1s"}]}, "health.file.0.file", "required"),
        ({"http": [{"uri": "up.example"}]}, "health.http.0.uri", "absolute http or https"),
        ({"http": [{}]}, "health.http.0.uri", "required"),
        ({"http": [{"uri": "http://h", "statuscode": 700}]}, "health.http.0.statuscode", "between 0 and 599"),
        ({"http": [{"uri": "http://h", "timeout": "-1s"}]}, "health.http.0.timeout", "must not be negative"),
        ({"tcp": [{"addr": "nohost"}]}, "health.tcp.0.addr", "missing port"),
        ({"tcp": [{"addr": "h:1", "interval": "often"}]}, "health.tcp.0.interval", "duration"),
        ({"tcp": {"addr": "h:1"}}, "health.tcp", "must be a list"),
        (
            {"tcp": [{"addr": "h:1"}, {"addr": "h:1", "timeout": "1s"}]},
            "health.tcp.1.addr",
            'a second health check named "h:1" (the first is health.tcp.0.addr)',
        ),
        (
            {"file": [{"file": "/x"}, {"file": "/x"}]},
            "health.file.1.file",
            "a second health check",
        ),
    ],
)
def test_health_check_errors(health: dict[str, Any], key: str, fragment: str) -> None:
    error = fails({"health": health})
    assert error.key == key and fragment in error.problem


def test_env_health_uses_go_field_names() -> None:
    environ = {
        "REGISTRY_HEALTH_STORAGEDRIVER_ENABLED": "true",
        "REGISTRY_HEALTH_FILECHECKERS": "[{file: /down}]",
        "REGISTRY_HEALTH_HTTPCHECKERS_0_URI": "http://h/",
        "REGISTRY_HEALTH_TCPCHECKERS": "[{addr: 'h:1'}]",
        "REGISTRY_HEALTH_TCPCHECKERS_0_THRESHOLD": "4",
    }
    loaded = parse(environ=environ)
    health = loaded.config.health
    assert health.storagedriver.enabled is True
    assert [check.file for check in health.file] == ["/down"]
    assert [check.uri for check in health.http] == ["http://h/"]
    assert [(check.addr, check.threshold) for check in health.tcp] == [("h:1", 4)]
    assert loaded.warnings == ()


def test_proxy() -> None:
    loaded = parse(
        {
            "storage": {"delete": {"enabled": True}},
            "proxy": {
                "remoteurl": "https://registry-1.example",
                "username": "u",
                "password": "p",
                "ttl": "1h",
            },
        }
    )
    assert loaded.config.proxy == config.ProxyConfig(
        remoteurl="https://registry-1.example", username="u", password="p", ttl=3600.0
    )
    assert loaded.warnings == ()


def test_proxy_defaults_and_never_expiring() -> None:
    enabled = {"storage": {"delete": {"enabled": True}}}
    proxy = parse({**enabled, "proxy": {"remoteurl": "http://up:5000"}}).config.proxy
    assert proxy == config.ProxyConfig(
        remoteurl="http://up:5000", username=None, password=None, ttl=168 * 3600.0
    )
    assert parse({"proxy": {"remoteurl": "http://up", "ttl": 0}}).config.proxy == config.ProxyConfig(
        remoteurl="http://up", ttl=None
    )
    assert parse({"proxy": {"remoteurl": "", "username": "u"}}).config.proxy is None


def test_proxy_expiry_without_deletes_warns() -> None:
    loaded = parse({"proxy": {"remoteurl": "http://up"}})
    assert loaded.config.proxy is not None
    assert loaded.warnings == (
        "test.yml: proxy.ttl: cached content does not expire while storage.delete.enabled is false,"
        " as in distribution",
    )


def test_proxy_with_readonly_storage_is_fine() -> None:
    readonly = {"storage": {"maintenance": {"readonly": {"enabled": True}}}}
    loaded = parse({**readonly, "proxy": {"remoteurl": "http://up", "ttl": 0}})
    assert loaded.config.proxy is not None and loaded.config.storage.readonly


@pytest.mark.parametrize(
    ("proxy", "key", "fragment"),
    [
        ({"remoteurl": "registry-1.docker.io"}, "proxy.remoteurl", "absolute http or https"),
        ({"remoteurl": "http://up", "ttl": "a week"}, "proxy.ttl", "duration"),
        ({"remoteurl": "http://up", "ttl": "-1h"}, "proxy.ttl", "must not be negative"),
        ({"remoteurl": ["http://up"]}, "proxy.remoteurl", "must be a string"),
    ],
)
def test_proxy_errors(proxy: dict[str, Any], key: str, fragment: str) -> None:
    error = fails({"proxy": proxy})
    assert error.key == key and fragment in error.problem


def test_env_proxy() -> None:
    environ = {"REGISTRY_PROXY_REMOTEURL": "http://up:5000", "REGISTRY_PROXY_PASSWORD": "%secret"}
    proxy = parse({"storage": {"delete": {"enabled": True}}}, environ).config.proxy
    assert proxy is not None and (proxy.remoteurl, proxy.password) == ("http://up:5000", "%secret")


@pytest.mark.parametrize(
    ("validation", "enabled"),
    [
        ({}, True),
        ({"enabled": True}, True),
        ({"disabled": True}, False),
        ({"disabled": False}, True),
        ({"enabled": True, "disabled": True}, True),
    ],
)
def test_validation_enabled(validation: dict[str, Any], enabled: bool) -> None:
    loaded = parse({"validation": validation})
    assert loaded.config.validation.enabled is enabled
    assert loaded.warnings == ()


def test_validation_enabled_false_alone_leaves_it_on_as_in_distribution() -> None:
    loaded = parse({"validation": {"enabled": False}})
    assert loaded.config.validation.enabled is True
    assert loaded.warnings == (
        "test.yml: validation.enabled: false leaves validation on, as in distribution;"
        " set validation.disabled: true",
    )
    assert parse({"validation": {"enabled": False, "disabled": True}}).config.validation.enabled is False


def test_validation_urls_and_packs() -> None:
    validation = parse(
        {
            "validation": {
                "manifests": {"urls": {"allow": ["^https?://([^/]+\\.)*example\\.com/"], "deny": ["bad"]}},
                "packs": {"enabled": True, "floatingtags": True},
            }
        }
    ).config.validation
    assert validation.allow == ("^https?://([^/]+\\.)*example\\.com/",)
    assert validation.deny == ("bad",)
    assert validation.packs == config.PackValidationConfig(enabled=True, floatingtags=True)


@pytest.mark.parametrize(
    ("validation", "key", "fragment"),
    [
        (
            {"manifests": {"urls": {"allow": ["ok", "(unclosed"]}}},
            "validation.manifests.urls.allow.1",
            "regular",
        ),
        ({"manifests": {"urls": {"deny": ["[z-a]"]}}}, "validation.manifests.urls.deny.0", "regular"),
        ({"manifests": {"urls": {"allow": {"a": 1}}}}, "validation.manifests.urls.allow", "list of strings"),
        ({"disabled": "no way"}, "validation.disabled", "boolean"),
        ({"packs": {"floatingtags": 2}}, "validation.packs.floatingtags", "boolean"),
    ],
)
def test_validation_errors(validation: dict[str, Any], key: str, fragment: str) -> None:
    error = fails({"validation": validation})
    assert error.key == key and fragment in error.problem


def test_env_validation() -> None:
    environ = {
        "REGISTRY_VALIDATION_DISABLED": "true",
        "REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW": "['^https://']",
        "REGISTRY_VALIDATION_PACKS_ENABLED": "true",
    }
    validation = parse(environ=environ).config.validation
    assert (validation.enabled, validation.allow, validation.packs.enabled) == (False, ("^https://",), True)


def test_new_sections_in_effect_are_redacted() -> None:
    loaded = parse(
        {
            "notifications": {
                "endpoints": [{"name": "e", "url": "http://h", "headers": {"Authorization": ["Bearer t0k"]}}]
            },
            "proxy": {"remoteurl": "http://up", "password": "pr0xy", "ttl": 0},
        }
    )
    text = config.dump(config.redacted(config.effective(loaded.config)))
    assert "t0k" not in text and "pr0xy" not in text
    assert text.count("<redacted>") == 2


def test_letsencrypt_http01_address() -> None:
    encrypt = {"cachefile": "/le", "hosts": ["h.example"]}
    tls = parse({"http": {"tls": {"letsencrypt": encrypt}}}).config.http.tls
    assert tls is not None and tls.letsencrypt is not None and tls.letsencrypt.http01addr == ":80"
    environ = {"REGISTRY_HTTP_TLS_LETSENCRYPT_HTTP01ADDR": "127.0.0.1:8080"}
    tls = parse({"http": {"tls": {"letsencrypt": encrypt}}}, environ).config.http.tls
    assert tls is not None and tls.letsencrypt is not None and tls.letsencrypt.http01addr == "127.0.0.1:8080"
    error = fails({"http": {"tls": {"letsencrypt": {**encrypt, "http01addr": "80"}}}})
    assert (error.key, error.problem) == (
        "http.tls.letsencrypt.http01addr",
        'missing port; expected HOST:PORT such as :5000 (got "80")',
    )


# -- refused: what the emulator does not implement -------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "why"),
    [
        ({"middleware": {"registry": [{"name": "x"}]}}, "middleware", "implements no middleware"),
        (
            {"reporting": {"bugsnag": {"apikey": "k"}}},
            "reporting",
            "reports to neither Bugsnag nor New Relic",
        ),
        ({"reporting": {"newrelic": {"licensekey": "k"}}}, "reporting", "Bugsnag nor New Relic"),
        ({"policy": {"repository": {"classes": ["image"]}}}, "policy", "restricts no manifest classes"),
        ({"log": {"hooks": [{"type": "mail", "levels": ["panic"]}]}}, "log.hooks", "sends no log hooks"),
        (
            {"proxy": {"remoteurl": "http://up", "exec": {"command": "h"}}},
            "proxy.exec",
            "`username` and `password`",
        ),
        ({"redis": {"addr": "r:1", "tls": {"enabled": True}}}, "redis.tls", "to redis without TLS"),
        ({"redis": {"addrs": ["r:1", "r:2"]}}, "redis.addrs", "connects to one redis addr"),
        ({"redis": {"addr": "r:1", "username": "u"}}, "redis.username", "with a password only"),
        ({"http": {"h2c": {"enabled": True}}}, "http.h2c", "serves no cleartext HTTP/2"),
        (
            {"http": {"tls": {"clientauth": "verify-client-cert-if-given"}}},
            "http.tls.clientauth",
            "always requires and verifies a client certificate when `clientcas` is set",
        ),
        (
            {"compatibility": {"schema1": {"enabled": True}}},
            "compatibility.schema1.enabled",
            "neither accepts nor serves schema1 manifests",
        ),
    ],
)
def test_unimplemented_parts_are_refused_by_name(override: dict[str, Any], key: str, why: str) -> None:
    error = fails(override)
    assert error.key == key
    assert error.problem.startswith("is set but this emulator ")
    assert why in error.problem
    remove = "the key" if key.endswith(("clientauth", "enabled", "username")) else "the section"
    assert error.problem.endswith(f"(remove {remove})")


def test_refusal_by_environment_names_the_variable() -> None:
    error = fails({}, {"REGISTRY_MIDDLEWARE_REGISTRY": "[{name: cloudfront}]"})
    assert (error.key, error.problem) == (
        "middleware",
        "is set but this emulator implements no middleware (remove the section)"
        " (from REGISTRY_MIDDLEWARE_REGISTRY)",
    )


def test_empty_unimplemented_sections_are_accepted() -> None:
    """distribution's example files carry empty sections; they configure nothing."""
    empty = {
        "middleware": {"registry": [], "storage": None},
        "reporting": {"bugsnag": {"apikey": ""}, "newrelic": {}},
        "policy": None,
        "log": {"hooks": []},
        "redis": {"tls": {"enabled": False}, "addrs": []},
        "http": {"h2c": {"enabled": False}},
        "compatibility": {"schema1": {"enabled": False}},
        "proxy": {"exec": {}},
    }
    assert parse(empty).warnings == ()


def test_distributions_own_example_configuration_is_accepted() -> None:
    # cmd/registry/config-example.yml of distribution 2.8, as the official image ships it.
    text = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""
    loaded = config.parse(text, source="config.yml")
    assert loaded.warnings == ()
    assert loaded.config.health.storagedriver == config.StorageDriverCheck(True, 10.0, 3)


def test_deprecated_loglevel_counts_when_log_level_is_absent() -> None:
    assert parse({"loglevel": "DEBUG"}).config.log.level == "debug"
    assert parse({"loglevel": "debug", "log": {"level": "warn"}}).config.log.level == "warn"
    error = fails({"loglevel": "loud"})
    assert (error.key, error.problem) == ("loglevel", 'must be one of error, warn, info, debug (got "loud")')
