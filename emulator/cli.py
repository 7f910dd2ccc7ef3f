"""``registry serve [CONFIG]`` and ``registry check-config [CONFIG]`` (also ``python -m emulator``).

A mistake stops either command with one line on stderr and exit status 1: ``configuration error: ...``
for what the configuration says (a key, a file it names, an extra it needs), and ``cannot listen on
...`` when the address is taken, which is no mistake in the file.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import logging
import os
import sys
import threading
import typing as t

from . import config as configuration
from .extras import DISTRIBUTION
from .extras import missing_extra
from .logs import log

USAGE_ERROR = 2


def package_version() -> str:
    """The installed distribution's version (not the configuration's ``version: 0.1``)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked: package metadata takes
    milliseconds to find, which every ``serve`` would otherwise spend before its first request."""

    def __init__(self, option_strings: t.Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit"
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | t.Sequence[t.Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def _stop(line: str) -> t.NoReturn:
    print(line, file=sys.stderr)
    raise SystemExit(1)


def _fail(message: str) -> t.NoReturn:
    _stop(f"configuration error: {message}")


def _load(path: str | None) -> configuration.LoadedConfig:
    try:
        loaded = configuration.load(path)
    except configuration.ConfigError as e:
        _fail(str(e))
    for warning in loaded.warnings:
        print(f"configuration warning: {warning}", file=sys.stderr)
    missing = missing_extra(loaded.config)
    if missing is not None:
        _fail(missing)
    return loaded


def check_config(path: str | None) -> int:
    """Print the settings in effect as YAML on stdout, then ``ok: ...`` on stderr (so that stdout stays
    a document ``yaml.safe_load`` reads, and a configuration file ``serve`` takes)."""
    loaded = _load(path)
    config = loaded.config
    _ssl_context(loaded)  # certificates and ciphers are checked here too
    _check_htpasswd(config)
    sys.stdout.write(configuration.dump(configuration.redacted(configuration.effective(config))))
    sys.stdout.flush()
    print(f"ok: {config.source}: {_summary(config)}", file=sys.stderr)
    return 0


def _check_htpasswd(config: configuration.Config) -> None:
    """An htpasswd file that is there already must be usable; a missing one is ``serve``'s to create."""
    htpasswd = config.auth.htpasswd
    if htpasswd is None or not os.path.lexists(htpasswd.path):
        return
    from .auth import HtpasswdFile
    from .auth import HtpasswdUnusable
    from .auth import check_file

    try:
        check_file(HtpasswdFile(htpasswd.path))
    except HtpasswdUnusable as e:
        _fail(f"{config.source}: auth.htpasswd.path: {e}")


def _summary(config: configuration.Config) -> str:
    """What ``serve`` would do, in a few words: where it listens, whether it asks for credentials."""
    scheme = "https" if config.http.tls is not None else "http"
    where = f"unix socket {config.http.addr}" if config.http.net == "unix" else config.http.addr
    auth = "htpasswd auth" if config.auth.htpasswd is not None else "no auth"
    return f"serve listens on {where} ({scheme}, {auth}, {config.storage.driver} storage)"


def _ssl_context(loaded: configuration.LoadedConfig) -> t.Any:
    if loaded.config.http.tls is None:
        return None  # without importing ssl, which plain HTTP never needs
    from .tls import TLSConfigError
    from .tls import configured_context

    try:
        return configured_context(loaded.config.http.tls)
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
    ssl_context = _ssl_context(loaded)
    # Local files first (the htpasswd file, the storage root): a mistake there stops the start before
    # anything is asked of a certificate authority.
    app = _make_app(config)
    if config.http.tls is not None and config.http.tls.letsencrypt is not None:
        from .letsencrypt import obtain_context
        from .tls import TLSConfigError

        try:
            ssl_context = obtain_context(config)  # before serving: ACME failures stop the start
        except TLSConfigError as e:
            _fail(f"{config.source}: {e.key}: {e.problem}")
    from .serving import serve_forever

    if config.source == configuration.DEV_DEFAULT_SOURCE:
        print("using the built-in development configuration:", file=sys.stderr)
        sys.stderr.write(configuration.dump(configuration.redacted(loaded.raw)))
    if not config.http.secret:
        log.warning("No HTTP secret provided - generated random secret. Uploads cannot span processes.")
    stop = threading.Event()
    if config.storage.uploadpurging.enabled and not config.storage.readonly:
        threading.Thread(target=_purge_uploads, args=(app, loaded, stop), daemon=True).start()
    if config.http.net == "unix":
        host, port = f"unix://{config.http.addr}", 0
    else:
        host, port = config.http.listen_host(), config.http.listen_port()

    listening = threading.Event()
    try:
        app.open()
    except configuration.ConfigError as e:
        # A debug port that is taken: one line naming http.debug.addr, as for the main port.
        stop.set()
        _stop(str(e))

    def ready(server: t.Any) -> None:
        listening.set()
        # What start-up made (modules, the configuration, the routes: about 28,000 objects) lives as long
        # as the process. Frozen, it is left out of every later collection: a full collection otherwise
        # walks all of it, about 20 ms each time, and a registry queuing notification events for its
        # endpoints starts one every few thousand requests.
        gc.freeze()
        scheme = "https" if ssl_context is not None else "http"
        where = (
            config.http.addr
            if config.http.net == "unix"
            else f"{host or '0.0.0.0'}:{server.socket.getsockname()[1]}"
        )
        if log.isEnabledFor(logging.INFO):
            # Finding the installed version reads package metadata: only when the line is written.
            log.info("listening on %s (%s)", where, scheme, extra={"fields": {"version": package_version()}})

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
        if listening.is_set():
            raise
        # A port another process holds is no mistake in the file: not a "configuration error".
        _stop(f"cannot listen on {config.http.addr}: {e.strerror or e}")
    finally:
        stop.set()
        app.close()
    return 0


def _make_app(config: configuration.Config) -> t.Any:
    """The app, or one line and exit 1 when a file or directory the configuration names is unusable."""
    from .app import make_app
    from .drivers.filesystem import RootUnusable

    try:
        return make_app(config)
    except RootUnusable as e:
        _fail(f"{config.source}: storage.filesystem.rootdirectory: {e}")
    except configuration.ConfigError as e:
        _fail(str(e))
    except Exception as e:
        # Only a configuration with htpasswd imports the auth module (and bcrypt) to compare types.
        if config.auth.htpasswd is not None:
            from .auth import HtpasswdUnusable

            if isinstance(e, HtpasswdUnusable):
                _fail(f"{config.source}: auth.htpasswd.path: {e}")
        raise


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registry", description="A container and pack registry emulator.")
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    where = "default: $REGISTRY_CONFIGURATION_PATH, else the built-in development configuration"
    serve_cmd = commands.add_parser("serve", help="serve the registry API")
    serve_cmd.add_argument("--version", action=_VersionAction)
    serve_cmd.add_argument("config", nargs="?", help=f"configuration file ({where})")
    check = commands.add_parser(
        "check-config",
        help="validate a configuration and print the settings in effect, secrets redacted",
        description="Validate a configuration as serve reads it (REGISTRY_* overrides applied) and print "
        "the settings in effect as YAML, defaults included and secrets redacted; a closing ok line goes to "
        "stderr.",
    )
    check.add_argument("--version", action=_VersionAction)
    check.add_argument("config", nargs="?", help=f"configuration file ({where})")
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] not in (["serve"], ["check-config"]):
        # The pack verbs bring an OCI client: the registry's own commands do not import it.
        from . import packcli

        packcli.add_parser(commands)
    args = parser.parse_args(arguments)
    if args.command == "pack":
        from . import packcli

        return packcli.run(args)
    if args.command == "serve":
        return serve(args.config)
    return check_config(args.config)


if __name__ == "__main__":
    sys.exit(main())
