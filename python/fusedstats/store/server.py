"""The stats server: ``fusedstats serve`` or ``python -m fusedstats.store.server``.

    python -m fusedstats.store.server --db URL_OR_PATH --host 127.0.0.1 --port N [--token T]

Serves one store (SQLite by default, PostgreSQL through a URL) over HTTP with the API of
:mod:`fusedstats.store.api`, on one uvicorn process. Writes need the token: ``--token``,
else the ``FUSEDSTATS_SERVER_TOKEN`` environment variable, else a random one that is
printed at start. Stop it with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence

from .protocol import TOKEN_ENV

DEFAULT_DB = "stats.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the server's options to ``parser`` (for ``fusedstats serve``).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_serve_arguments(parser)
        >>> args = parser.parse_args(["--db", "runs/", "--port", "9000"])
        >>> args.db, args.host, args.port, args.token
        ('runs/', '127.0.0.1', 9000, None)
    """
    from .api import DEFAULT_MAX_BODY_BYTES

    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="URL",
        help="the store: an SQLite file or directory (<dir>/stats.db), or an SQLAlchemy URL "
        f"such as postgresql+psycopg://user@host/db (default: {DEFAULT_DB})",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"the write token (default: ${TOKEN_ENV}, else a random one, printed)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help=f"largest request body accepted (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default: warning)",
    )


def serve_from_args(args: argparse.Namespace) -> int:
    """Runs the server the parsed options describe until it is stopped; the exit status."""
    import uvicorn

    from .api import create_app
    from .sql import SqlStatsStore

    if not 0 <= args.port <= 65535:
        print(f"fusedstats serve: --port {args.port} is not a port", file=sys.stderr)
        return 2
    if args.max_body_bytes < 1:
        print("fusedstats serve: --max-body-bytes must be at least 1", file=sys.stderr)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"fusedstats serve: write token (set {TOKEN_ENV} to choose one): {token}")
    try:
        store = SqlStatsStore(args.db)
    except Exception as error:  # a bad URL, an unreachable database, a newer schema
        print(f"fusedstats serve: cannot open the store --db {args.db}: {error}", file=sys.stderr)
        return 1
    try:
        app = create_app(store, token=token, max_body_bytes=args.max_body_bytes)
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=args.host, port=args.port, log_level=args.log_level, access_log=False
            )
        )
        shown = store.engine.url.render_as_string(hide_password=True)
        print(f"fusedstats serve: http://{args.host}:{args.port} (store {shown})", flush=True)
        server.run()
        return 0 if server.started else 1
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusedstats.store.server",
        description="Serve a fusedstats stats store over HTTP.",
    )
    add_serve_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
