"""Running the app under uvicorn with voxlive's shutdown order.

On SIGTERM (or Ctrl-C) the HAProxy agent says ``drain`` at once (:meth:`Server.handle_exit`),
then uvicorn by default closes every WebSocket with 1012 at once, losing the
windows still in flight. voxlive first stops listening, turns ``/readyz`` unready and refuses
new streams, moves every live stream that asked for acks (a fresh ``ack``, ``moving``, close
1012: its client resumes on another front), lets every other open stream finish: its buffered
windows are classified and sent, then ``end`` and close 1001, for at most ``drain_timeout_ms``,
and only then hands over to uvicorn's own shutdown (remaining connections, lifespan). The
process exits once every stream has closed, or after the drain time.
"""

from __future__ import annotations

import logging
import re
import socket
from types import FrameType
from typing import Any

import uvicorn

from voxlive.server.protocols import guarded_protocols
from voxlive.server.service import Service
from voxlive.settings import Settings

# Largest request head (request line + headers) a client may send, bytes; past it: 400.
MAX_HEADER_BYTES = 16 * 1024
_QUERY = re.compile(r"\?[^\s\"]*")


class RedactQuery(logging.Filter):
    """Drops query strings from uvicorn's log lines: they may carry ``?token=`` (and the page's
    URL does), and a log is no place for secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _QUERY.sub("?…", a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


def uvicorn_config(app: Any, settings: Settings, **changes: Any) -> uvicorn.Config:
    """The one uvicorn configuration voxlive serves with (the CLI and the tests' servers).

    Every buffer bounded: frames and messages up to ``max_frame_bytes`` (uvicorn closes 1009
    past it, before assembling the frame), no permessage-deflate (it made a frame ~1000× cheaper
    to send than to receive, and PCM does not compress), request heads up to 16 KiB, headers due
    within ``header_timeout_ms``, at most ``max_connections`` sockets, pongs and closes bounded
    (see :mod:`voxlive.server.protocols`).
    """
    http, ws = guarded_protocols(
        header_timeout_s=settings.header_timeout_ms / 1000,
        max_connections=settings.max_connections,
        max_per_source=settings.max_connections_per_source,
        trusted=settings.trusted_proxies,
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "http": http,
        "ws": ws,
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": False,
        # X-Forwarded-For only from the configured proxies (uvicorn's default trusts 127.0.0.1)
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,  # after voxlive's own drain (drain_timeout_ms)
        **changes,
    }
    config = uvicorn.Config(app, **options)
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuery) for f in logger.filters):
            logger.addFilter(RedactQuery())
    return config


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM or Ctrl-C: the agent says ``drain`` at once, so the load balancer routes no
        new stream here, before uvicorn's loop notices and :meth:`shutdown` drains."""
        self.service.begin_drain()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while we drain
        await self.service.drain(self.service.settings.drain_timeout_ms / 1000)
        await super().shutdown(sockets=sockets)
