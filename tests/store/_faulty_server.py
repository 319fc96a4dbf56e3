"""A real stats server whose handling of one kind of request is broken, as a buggy or
older server would be: any request whose body holds the bytes ``POISON`` gets a 500
(the rest are served by the real application and database).

    python tests/store/_faulty_server.py DB PORT   (token from FUSEDSTATS_SERVER_TOKEN)
"""

from __future__ import annotations

import os
import sys

import uvicorn

from fusedstats.store.api import create_app
from fusedstats.store.sql import SqlStatsStore

MARKER = b"POISON"


class FailsOnMarker:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] == "GET":
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if MARKER in body:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            return

        async def replay():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        await self.app(scope, replay, send)


def main() -> None:
    db, port = sys.argv[1], int(sys.argv[2])
    store = SqlStatsStore(db)
    app = create_app(store, token=os.environ["FUSEDSTATS_SERVER_TOKEN"])
    uvicorn.run(FailsOnMarker(app), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
