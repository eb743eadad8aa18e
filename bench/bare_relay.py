"""A bare python-socketio relay (no persistence, no auth): the yardstick chat_load.py compares the server against.

    python bench/bare_relay.py --port 8090

It speaks the two events chat_load.py uses, with the server's payloads and acks:
`consultation:join` puts the socket in the room, `message:send` numbers the message,
emits it to the room and acks it.
"""

import argparse
import itertools
from datetime import UTC, datetime

import socketio
import uvloop
from aiohttp import web

server = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
app = web.Application()
server.attach(app)
app.router.add_get("/readyz", lambda request: web.json_response({"ready": True}))
sequence = itertools.count(1)


@server.on("consultation:join")
async def join(sid, data):
    await server.enter_room(sid, f"consultation:{data['consultation_id']}")
    return {"ok": True, "messages": [], "has_more": False}


@server.on("message:send")
async def send(sid, data):
    message = {
        "consultation_id": data["consultation_id"],
        "seq": next(sequence),
        "sender_id": sid,
        "client_msg_id": data["client_msg_id"],
        "body": data["body"],
        "sent_at": datetime.now(UTC).isoformat(),
    }
    await server.emit("message", message, room=f"consultation:{data['consultation_id']}")
    return {"ok": True, "message": message, "duplicate": False}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    # The server's event loop (web/cli.py), so that the ratio compares like with like.
    web.run_app(
        app, host="127.0.0.1", port=parser.parse_args().port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )
