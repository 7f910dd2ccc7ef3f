"""``registry serve [CONFIG]`` and ``registry check-config CONFIG`` (also ``python -m emulator``)."""

from __future__ import annotations

import argparse
import datetime
import sys
import threading
import typing as t

from . import config as configuration
from .logs import log

USAGE_ERROR = 2


def _fail(message: str) -> t.NoReturn:
    print(f"configuration error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _load(path: str | None) -> configuration.LoadedConfig:
    try:
        loaded = configuration.load(path)
    except configuration.ConfigError as e:
        _fail(str(e))
    for warning in loaded.warnings:
        print(f"configuration warning: {warning}", file=sys.stderr)
    return loaded


def check_config(path: str) -> int:
    loaded = _load(path)
    _ssl_context(loaded)  # certificates and ciphers are checked here too
    shown = configuration.redacted(loaded.raw)
    http = shown.get("http")
    if not isinstance(http, dict):
        http = shown["http"] = {}
    # The connection cap is ours, not distribution's: shown in effect even where the file leaves it out.
    http.setdefault("maxconnections", loaded.config.http.maxconnections)
    sys.stdout.write(configuration.dump(shown))
    return 0


def _ssl_context(loaded: configuration.LoadedConfig) -> t.Any:
    tls = loaded.config.http.tls
    if tls is None or tls.letsencrypt is not None:
        return None
    from .tls import TLSConfigError
    from .tls import server_context

    try:
        return server_context(tls)
    except TLSConfigError as e:
        _fail(f"{loaded.config.source}: {e.key}: {e.problem}")


def _purge_uploads(app: t.Any, loaded: configuration.LoadedConfig, stop: threading.Event) -> None:
    purging = loaded.config.storage.uploadpurging
    while not stop.is_set():
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=purging.age)
        try:
            purged = app.registry.uploads.purge(cutoff, dry_run=purging.dryrun)
            if purged:
                log.info("purged %d upload(s)%s", len(purged), " (dry run)" if purging.dryrun else "")
        except Exception:
            log.exception("upload purging failed")
        stop.wait(purging.interval)


def serve(path: str | None) -> int:
    loaded = _load(path)
    config = loaded.config
    from . import logs

    logs.configure(config.log)
    if config.source == configuration.DEV_DEFAULT_SOURCE:
        print("using the built-in development configuration:", file=sys.stderr)
        sys.stderr.write(configuration.dump(configuration.redacted(loaded.raw)))
    ssl_context = _ssl_context(loaded)
    if config.http.tls is not None and config.http.tls.letsencrypt is not None:
        from .letsencrypt import obtain_context
        from .tls import TLSConfigError

        try:
            ssl_context = obtain_context(config)  # before serving: ACME failures stop the start
        except TLSConfigError as e:
            _fail(f"{config.source}: {e.key}: {e.problem}")
    from .app import make_app
    from .serving import serve_forever

    if not config.http.secret:
        log.warning("No HTTP secret provided - generated random secret. Uploads cannot span processes.")
    try:
        app = make_app(config)
    except OSError as e:
        # e.g. a missing htpasswd file that cannot be provisioned where the configuration says.
        key = "auth.htpasswd.path" if config.auth.htpasswd is not None else "storage"
        _fail(f"{config.source}: {key}: cannot use {e.filename}: {e.strerror or e}")
    stop = threading.Event()
    if config.storage.uploadpurging.enabled and not config.storage.readonly:
        threading.Thread(target=_purge_uploads, args=(app, loaded, stop), daemon=True).start()
    if config.http.net == "unix":
        host, port = f"unix://{config.http.addr}", 0
    else:
        host, port = config.http.listen_host(), config.http.listen_port()

    def ready(server: t.Any) -> None:
        scheme = "https" if ssl_context is not None else "http"
        where = (
            config.http.addr
            if config.http.net == "unix"
            else f"{host or '0.0.0.0'}:{server.socket.getsockname()[1]}"
        )
        log.info("listening on %s (%s)", where, scheme, extra={"fields": {"version": "0.1"}})

    try:
        serve_forever(
            app,
            host,
            port,
            ssl_context=ssl_context,
            drain_timeout=config.http.draintimeout,
            max_connections=config.http.maxconnections,
            on_ready=ready,
        )
    except OSError as e:
        _fail(f"{config.source}: http.addr: cannot listen on {config.http.addr}: {e.strerror or e}")
    finally:
        stop.set()
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registry", description="A container and pack registry emulator.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the registry API")
    serve_cmd.add_argument(
        "config",
        nargs="?",
        help="configuration file (default: $REGISTRY_CONFIGURATION_PATH, "
        "else the built-in development configuration)",
    )
    check = commands.add_parser(
        "check-config", help="validate a configuration and print it, secrets redacted"
    )
    check.add_argument("config", help="configuration file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.config)
    return check_config(args.config)


if __name__ == "__main__":
    sys.exit(main())
