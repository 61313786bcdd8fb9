"""Running the app under uvicorn with voxlive's shutdown order.

On SIGTERM (or Ctrl-C) uvicorn by default closes every WebSocket with 1012 at once, losing the
windows still in flight. voxlive first stops listening, turns ``/readyz`` unready and refuses
new streams, lets every open stream finish: its buffered windows are classified and sent, then
``end`` and close 1001, for at most ``drain_timeout_ms``, and only then hands over to uvicorn's
own shutdown (remaining connections, lifespan).
"""

from __future__ import annotations

import socket

import uvicorn

from voxlive.server.service import Service


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while we drain
        await self.service.drain(self.service.settings.drain_timeout_ms / 1000)
        await super().shutdown(sockets=sockets)
