"""The stats server: ``fusedstats serve`` or ``python -m fusedstats.store.server``.

    python -m fusedstats.store.server --db URL_OR_PATH --host 127.0.0.1 --port N

Serves one store (SQLite by default, PostgreSQL through a URL) over HTTP with the API of
:mod:`fusedstats.store.api`, on one uvicorn process. Every route but ``/health`` and the
API description needs a token: the write token for everything, or the optional
read-only token for reads. Tokens are never printed and best not passed on the command
line (``/proc/<pid>/cmdline`` shows it to every local user). The write token comes from
``--token`` (still taken, with a warning), else ``$FUSEDSTATS_SERVER_TOKEN``, else
``--token-file`` (default ``~/.config/fusedstats/server-<port>.token``; when the file
does not exist a random token is written there, mode 600, and only its location is
printed). The read-only token: ``$FUSEDSTATS_SERVER_READ_TOKEN``, else
``--read-token-file``. Stop the server with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from .protocol import READ_TOKEN_ENV, READ_TOKEN_FILE_ENV, TOKEN_ENV, TOKEN_FILE_ENV

DEFAULT_DB = "stats.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the server's options to ``parser`` (for ``fusedstats serve``).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_serve_arguments(parser)
        >>> args = parser.parse_args(["--db", "runs/", "--port", "9000"])
        >>> args.db, args.host, args.port, args.token, args.token_file
        ('runs/', '127.0.0.1', 9000, None, None)
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
        "--token-file",
        default=None,
        metavar="PATH",
        help=f"file holding the write token (default: ${TOKEN_FILE_ENV}, else "
        "~/.config/fusedstats/server-<port>.token); when it does not exist, a random token "
        f"is written there (mode 600). ${TOKEN_ENV} and --token take precedence",
    )
    parser.add_argument(
        "--read-token-file",
        default=None,
        metavar="PATH",
        help=f"file holding a read-only token (default: ${READ_TOKEN_FILE_ENV}); "
        f"${READ_TOKEN_ENV} takes precedence",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the write token (visible to other users in the process list: prefer "
        f"${TOKEN_ENV} or --token-file)",
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
    try:
        token = write_token(args)
        read_token = optional_token(READ_TOKEN_ENV, args.read_token_file, READ_TOKEN_FILE_ENV)
    except (OSError, ValueError) as error:
        print(f"fusedstats serve: {error}", file=sys.stderr)
        return 2
    if read_token is not None and read_token == token:
        print(
            "fusedstats serve: the read-only token must differ from the write token",
            file=sys.stderr,
        )
        return 2
    try:
        store = SqlStatsStore(args.db)
    except Exception as error:  # a bad URL, an unreachable database, a newer schema
        print(f"fusedstats serve: cannot open the store --db {args.db}: {error}", file=sys.stderr)
        return 1
    try:
        app = create_app(
            store, token=token, max_body_bytes=args.max_body_bytes, read_token=read_token
        )
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


def default_token_file(port: int) -> Path:
    """``$XDG_CONFIG_HOME/fusedstats/server-<port>.token`` (default ``~/.config/...``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(config).expanduser() / "fusedstats" / f"server-{port}.token"


def write_token(args: argparse.Namespace) -> str:
    """The write token: ``--token`` (warned), else ``$FUSEDSTATS_SERVER_TOKEN``, else
    the token file (``--token-file``, ``$FUSEDSTATS_SERVER_TOKEN_FILE`` or the default
    for the port), made with a random token if it does not exist. Says on stdout which
    file, never the token."""
    if args.token:
        print(
            "fusedstats serve: warning: --token is visible to every local user in the process "
            f"list; prefer ${TOKEN_ENV} or --token-file",
            file=sys.stderr,
        )
        return str(args.token)
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token
    chosen = args.token_file or os.environ.get(TOKEN_FILE_ENV)
    path = Path(chosen).expanduser() if chosen else default_token_file(args.port)
    if path.exists():
        token = read_token_file(path)
        print(f"fusedstats serve: write token read from {path}", flush=True)
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    print(
        f"fusedstats serve: a new write token was written to {path} (mode 600); clients "
        f"read it with {TOKEN_FILE_ENV}={path}",
        flush=True,
    )
    return token


def optional_token(env: str, path: str | None, path_env: str) -> str | None:
    """A token from ``$env``, else from the file ``path`` (or ``$path_env``) names, else None."""
    token = os.environ.get(env)
    if token:
        return token
    chosen = path or os.environ.get(path_env)
    return read_token_file(Path(chosen).expanduser()) if chosen else None


def read_token_file(path: Path) -> str:
    """The first line of ``path``, stripped; ValueError if it is empty."""
    with path.open(encoding="utf-8") as file:
        token = file.readline().strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusedstats.store.server",
        description="Serve a fusedstats stats store over HTTP.",
    )
    add_serve_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
