"""The ``cc-api`` command: argument parsing and rendering over ``ccapi.daemon.launcher`` and ``ccapi.daemon.service``.

Exit codes: 0 success, 1 failure, 2 bad usage or configuration, 3 not running (``status``, as LSB
init scripts and ``systemctl status`` do), 4 a gateway already runs for this home (``run``). ``status`` of a gateway
that runs but does not answer ``/healthz`` with a 200 (hung, its database gone) is 1, so a check script sees it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from ccapi import __version__
from ccapi.config import ConfigError, Settings
from ccapi.daemon import handover
from ccapi.daemon.console import render_log_line, render_service_plan, render_status, status_json, to_json
from ccapi.daemon.envfile import with_env_file
from ccapi.daemon.launcher import START_TIMEOUT, Launcher
from ccapi.daemon.logfile import follow, printable, rotated_lines, tail
from ccapi.daemon.service import (
    ServiceError,
    check_env_file,
    current_platform,
    gateway_command,
    install,
    plan_service,
    uninstall,
)
from ccapi.paths import StatePaths
from ccapi.privacy import PRIVATE_UMASK, tighten

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_RUNNING = 0, 1, 2, 3, 4


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"cc-api: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    if args.env_fd is not None:
        os.environ.update(handover.receive(args.env_fd))
    elif handover.private_part(os.environ):
        handover.reexec_privately(args.argv, os.environ)  # secrets out of /proc/<pid>/environ; same pid
    try:
        os.environ.update(with_env_file(os.environ))  # the env file, as systemd's EnvironmentFile would
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = Settings.from_env().with_overrides(**overrides)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    launcher = Launcher(settings, os.environ)
    running = launcher.running_state()
    if running is not None:  # told before the imports below: a service retrying this would pay them every time
        message = f"a gateway already runs for {settings.home} at {running.url} (pid {running.pid}): `cc-api stop` it"
        return _fail(message, EXIT_RUNNING)
    if launcher.claim_home() is None:  # held for the rest of this process
        return _fail(f"another gateway is starting for {settings.home}: see `cc-api status`", EXIT_RUNNING)
    # Only now, after the hand-over (the re-executed image would import them again) and the settings (a mistake in
    # them is told at once): ~3 CPU-seconds, the SDK's `mcp` most.
    import structlog
    from sanic.server.socket import bind_socket

    from ccapi.api.protocol import HeadDeadlineProtocol
    from ccapi.app import create_app  # Sanic and the SDK: only the command that serves pays for them
    from ccapi.daemon.signals import StopOnSignal
    from ccapi.observability.logs import configure_logging, secret_values
    from ccapi.store import StoreUnavailable

    user_umask = os.umask(PRIVATE_UMASK)  # for the whole run; Claude Code children get the user's back
    settings = settings.with_overrides(child_umask=user_umask)
    try:
        configure_logging(settings.log_dir, console=not args.no_console_log, secrets=secret_values(os.environ))
    except OSError as exc:  # a file where the folder goes, a home on a read-only disk: a traceback before
        return _fail(f"cannot write the log in {settings.log_dir}: {exc.strerror or exc}", EXIT_USAGE)
    log = structlog.get_logger("ccapi.daemon.cli")
    if changes := tighten(settings):
        log.warning("state_made_private", count=len(changes), changes=dict(list(changes.items())[:20]))
    stop = StopOnSignal()
    stop.install()  # before the bind: a supervisor may signal as soon as the port answers
    try:
        # Bound here rather than by Sanic, which makes the socket inheritable: a Claude Code child
        # holding it would keep the port after a crash of the gateway alone.
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:  # taken, not this machine's, not allowed, or a host name that does not resolve
        log.error("cannot_listen", host=settings.host, port=settings.port, error=exc.strerror or str(exc))
        return EXIT_FAILED
    sock.set_inheritable(False)
    # `--port 0` lets the OS choose: the app's log line and the state record name the port it chose.
    settings = settings.with_overrides(port=sock.getsockname()[1])
    mock = None
    if args.mock_model:
        from ccapi.testing import MockModel

        mock = MockModel()
        mock.start()
        settings = settings.with_overrides(upstream_url=mock.url, mock_model=True)
        print(
            f"cc-api: MOCK MODEL — replies are scripted, not from Claude (the gateway asks it at {mock.url}; "
            "send your requests to the gateway)",
            file=sys.stderr,
        )
    app = create_app(settings)
    stop.attach(app)
    if not args.no_console_log:  # a person watching (a background gateway's stderr is its JSON-lines log)
        ready = f"cc-api: ready at {settings.base_url} (open it in a browser for the console; Ctrl-C stops)"
        app.after_server_start(lambda _app: print(ready, file=sys.stderr, flush=True))
    logging.getLogger("sanic.error").addFilter(_ToldOnce((ConfigError, StoreUnavailable)))
    try:
        with launcher.recorded(settings.port):
            app.run(sock=sock, single_process=True, motd=False, access_log=False, protocol=HeadDeadlineProtocol)
    except ConfigError as exc:  # found at start-up (CC_API_SANDBOX=require without a sandbox)
        log.error("cannot_start", error=str(exc))
        return EXIT_USAGE
    except StoreUnavailable as exc:
        log.error("cannot_open_store", error=str(exc))
        return EXIT_USAGE if exc.lasting else EXIT_FAILED
    finally:
        if mock is not None:
            mock.stop()
    return EXIT_OK


class Cancelled(KeyboardInterrupt):
    """``SIGTERM`` or ``SIGHUP`` while ``start`` waits (``timeout 5 cc-api start``, a closed terminal): cancelled as
    Ctrl-C cancels it, the gateway it started stopped; the exit code is the signal's."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _cancel(signum: int, _frame: object) -> None:
    raise Cancelled(signum)


def _start(args: argparse.Namespace) -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _cancel)
    result = Launcher.from_environment().start(
        host=args.host, port=args.port, mock_model=args.mock_model, timeout=args.timeout
    )
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if args.json:
        print(to_json(result))
    elif result.outcome == "failed":
        _tell_failure(f"start failed: {result.message}", result.log_tail)
    else:
        print(f"cc-api: {result.message}")
    return EXIT_FAILED if result.outcome == "failed" else EXIT_OK  # already running: done, as `systemctl start` says


def _tell_failure(message: str, log_tail: Sequence[str]) -> None:
    print(f"cc-api: {message}", file=sys.stderr)
    if log_tail:
        rendered = (printable(render_log_line(line)) for line in log_tail)
        print("--- last lines of the log ---", *rendered, sep="\n", file=sys.stderr)


class _ToldOnce(logging.Filter):
    """Sanic logs a start-up failure's traceback before it re-raises it; the ones ``run`` tells in a line of its
    own (``cannot_start``, ``cannot_open_store``) are left out."""

    def __init__(self, told: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.told = told

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], self.told))


def _stop(args: argparse.Namespace) -> int:
    result = _for_running().stop(timeout=args.timeout)
    print(to_json(result) if args.json else f"cc-api: {result.message}")
    return EXIT_FAILED if result.outcome == "failed" else EXIT_OK


def _for_running() -> Launcher:
    launcher = Launcher.for_running()
    if launcher.problem:
        print(f"cc-api: warning: {launcher.problem} (the next start will refuse it)", file=sys.stderr)
    return launcher


def _status(args: argparse.Namespace) -> int:
    launcher = _for_running()
    status = launcher.status()
    print(status_json(status, launcher.paths) if args.json else render_status(status, launcher.paths))
    if not status.running:  # a gateway still starting too: it does not serve yet
        return EXIT_NOT_RUNNING
    return EXIT_OK if status.healthy else EXIT_FAILED


def _logs(args: argparse.Namespace) -> int:
    log_file = StatePaths.from_env().log_file
    if not log_file.exists() and not args.follow and not log_file.with_name(f"{log_file.name}.1").exists():
        return _fail(f"no log yet at {log_file}")
    show: Callable[[str], str] = printable if args.json else lambda line: printable(render_log_line(line))
    last = tail(log_file, args.lines)
    earlier = rotated_lines(log_file, args.lines - len(last.lines)) if len(last.lines) < args.lines else ()
    for line in (*earlier, *last.lines):
        print(show(line))
    if args.follow:
        sys.stdout.flush()
        try:
            for line in follow(log_file, last.end):
                print(show(line), flush=True)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _service(args: argparse.Namespace) -> int:
    try:
        platform = args.platform or current_platform()
        plan = plan_service(platform, StatePaths.from_env(), gateway_command(), os.environ.get("PATH", ""))
        installing = args.command == "install-service"
        if args.dry_run:
            print(to_json(plan) if args.json else render_service_plan(plan, install=installing))
            if installing:
                check_env_file(plan)  # what would stop the install: told now, with its exit code
            return EXIT_OK
        result = install(plan, _for_running(), args.timeout) if installing else uninstall(plan)
    except ServiceError as exc:
        return _fail(str(exc))
    if args.json:
        print(to_json(result))
    elif result.outcome == "failed":
        _tell_failure(result.message, result.log_tail)
    else:
        print(f"cc-api: {result.message}")
    return EXIT_FAILED if result.outcome == "failed" else EXIT_OK


def _acp(args: argparse.Namespace) -> int:
    from ccapi.acp import serve  # the ACP library: only this command pays for it

    key = with_env_file(os.environ).get("CC_API_KEY") or None  # the environment, else the env file, as everywhere
    return serve(args.url or _for_running().url, key)  # a setting the running gateway never read is no matter here


def _version(args: argparse.Namespace) -> int:
    import claude_agent_sdk
    from claude_agent_sdk._cli_version import __cli_version__

    if args.json:
        print(
            to_json(
                {"version": __version__, "sdk_version": claude_agent_sdk.__version__, "cli_version": __cli_version__}
            )
        )
    else:
        print(f"cc-api {__version__} (claude-agent-sdk {claude_agent_sdk.__version__}, Claude Code {__cli_version__})")
    return EXIT_OK


def _count(text: str) -> int:
    """``logs -n``: a number of lines, 0 or more."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return int(text)


def _port(text: str) -> int:
    """``--port``, checked as ``CC_API_PORT`` is: out of range, it was a traceback in the log after ``start`` waited."""
    port = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cc-api",
        description="Session-oriented HTTP gateway for Claude.",
        epilog="State lives in $CC_API_HOME (default ~/.cc-api); settings come from the environment and "
        "$CC_API_HOME/cc-api.env. Exit codes: 0 ok, 1 failed, 2 usage, 3 not running, 4 already running (run).",
    )
    parser.add_argument("-V", "--version", action="version", version=f"cc-api {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print machine-readable JSON")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".", parents=list(parents)
        )
        sub.set_defaults(handler=handler)
        return sub

    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", help="listen address (default CC_API_HOST or 127.0.0.1)")
    listen.add_argument("--port", type=_port, help="listen port (default CC_API_PORT or 8000; 0: any free one)")
    listen.add_argument(
        "--mock-model",
        action="store_true",
        help="serve from the bundled mock model instead of Claude (no account needed)",
    )

    run = command("run", _run, "run the gateway in the foreground", [listen])
    run.add_argument(
        "--no-console-log",
        action="store_true",
        help="log only to the log file (for `start` and launchd, whose stderr is that file)",
    )
    run.add_argument(handover.ENV_FD_OPTION, type=int, help=argparse.SUPPRESS)  # see ccapi.daemon.handover
    start = command(
        "start", _start, "start the gateway in the background and wait until it is healthy", [listen, as_json]
    )
    start.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for /healthz (default 30)")
    stop = command("stop", _stop, "stop the background gateway (SIGTERM, then SIGKILL after --timeout)", [as_json])
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds to wait before SIGKILL (default 15)")
    command(
        "status",
        _status,
        "show whether the gateway runs, where, and its sessions (exit 3: not running or starting; 1: not healthy)",
        [as_json],
    )
    logs = command("logs", _logs, "show the gateway's log, rendered for reading")
    logs.add_argument("--json", action="store_true", help="print the raw JSON lines")
    logs.add_argument("-n", "--lines", type=_count, default=50, help="lines to show (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    for name, verb in (("install-service", "install and start"), ("uninstall-service", "stop and remove")):
        service = command(name, _service, f"{verb} the per-user service (systemd --user or launchd)", [as_json])
        service.add_argument(
            "--dry-run",
            action="store_true",
            help="print the file, its destination and the commands instead of doing anything",
        )
        service.add_argument(
            "--platform", choices=("linux", "macos"), help="render for this platform (default: this machine's)"
        )
        if name == "install-service":
            service.add_argument(
                "--timeout", type=float, default=START_TIMEOUT, help="seconds to wait for /healthz (default 30)"
            )
    acp = command("acp", _acp, "speak the Agent Client Protocol on stdio, over a running gateway's sessions")
    acp.add_argument("--url", help="the gateway (default: the one `cc-api start` runs here; key from CC_API_KEY)")
    command("version", _version, "print versions", [as_json])
    return parser


def _standard_streams() -> None:
    """``/dev/null`` on any of descriptors 0, 1 and 2 that is closed (``cc-api run <&- >&-`` from a supervisor or a
    script). Left closed, the next file the gateway opens took its number: its home's lock became its stdin, its log
    file its stdout, a socket its stderr, and every child that inherits its standard streams (the sandbox probe,
    Claude Code's stderr) inherited those instead, the lock among them."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: ``fd`` itself, as those below are open
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:  # Python found it closed at start-up: print() to it dropped what it said
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's own stream


def main(argv: Sequence[str] | None = None) -> int:
    _standard_streams()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt as exc:  # Ctrl-C (or ``Cancelled``): what was under way is cancelled (Launcher.start)
        return 128 + (exc.signum if isinstance(exc, Cancelled) else signal.SIGINT)  # the shell's code for the signal
    except BrokenPipeError:  # `cc-api logs | head`: exit quietly, and keep Python from flushing into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
