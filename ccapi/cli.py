"""The ``cc-api`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ccapi import __version__
from ccapi.config import ConfigError, Settings


def _run(args: argparse.Namespace) -> int:
    from ccapi.app import create_app
    from ccapi.logs import configure_logging

    try:
        settings = Settings.from_env()
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = settings.with_overrides(**overrides)
    except ConfigError as exc:
        print(f"cc-api: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_dir)
    mock = None
    if args.mock_model:
        from ccapi.testing import MockModel

        mock = MockModel()
        mock.start()
        settings = settings.with_overrides(upstream_url=mock.url, mock_model=True)
        print(f"cc-api: MOCK MODEL at {mock.url} — replies are scripted, not from Claude", file=sys.stderr)
    app = create_app(settings)
    try:
        app.run(host=settings.host, port=settings.port, single_process=True, motd=False, access_log=False)
    finally:
        if mock is not None:
            mock.stop()
    return 0


def _version(args: argparse.Namespace) -> int:
    import claude_agent_sdk
    from claude_agent_sdk._cli_version import __cli_version__

    print(f"cc-api {__version__} (claude-agent-sdk {claude_agent_sdk.__version__}, Claude Code {__cli_version__})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cc-api", description="Session-oriented HTTP gateway for Claude.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway in the foreground")
    run.add_argument("--host", help="listen address (default CC_API_HOST or 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default CC_API_PORT or 8000)")
    run.add_argument("--mock-model", action="store_true",
                     help="serve from the bundled mock model instead of Claude (no account needed)")
    run.set_defaults(handler=_run)
    version = commands.add_parser("version", help="print versions")
    version.set_defaults(handler=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
