"""The ASGI application: routes, lifespan, static web app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from voxlive.inference.base import Classifier
from voxlive.pipeline.assembly import load_classifier
from voxlive.server.access import bearer, token_ok, trusted_hosts
from voxlive.server.connection import audio_endpoint
from voxlive.server.service import Service
from voxlive.server.uploads import classify_upload
from voxlive.server.webapp import find_web_dir
from voxlive.settings import Settings

log = logging.getLogger(__name__)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 ready; 200 ``degraded`` while a fallback serves; 503 loading, failed or stopping.
    ``?strict=1`` (the load balancer's check): 503 too while degraded, draining, or without
    room (load at ``agent_drain_at``)."""
    service = _service(request)
    if not _status_allowed(request, service):
        return JSONResponse({"status": "unauthorized"}, status_code=401)
    strict = request.query_params.get("strict", "") not in ("", "0", "false")
    ok = service.ready and not (strict and (service.degraded or not service.has_room))
    return JSONResponse(service.describe(), status_code=200 if ok else 503)


def _status_allowed(request: Request, service: Service) -> bool:
    """With ``--status-access token``, /readyz and /metrics need the token too."""
    if service.settings.status_access == "public":
        return True
    return token_ok(service.settings.token, bearer(request.headers))


async def metrics(request: Request) -> Response:
    if not _status_allowed(request, _service(request)):
        return JSONResponse({"status": "unauthorized"}, status_code=401)
    return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def classify(request: Request) -> Response:
    """POST an audio file as the body; get the JSON timeline the CLI prints."""
    return await classify_upload(request, _service(request))


def create_app(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    loader: Callable[[Settings], Classifier] = load_classifier,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> Starlette:
    """Build the app. ``classifier`` skips loading (tests); ``on_fatal`` hears startup failures."""
    service = Service(settings, classifier=classifier, loader=loader, on_fatal=on_fatal)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes: list[Route | WebSocketRoute | Mount] = [
        WebSocketRoute("/audio", audio_endpoint),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/classify", classify, methods=["POST"]),
    ]
    web_dir = find_web_dir(settings.web_dir)
    if (web_dir / "index.html").is_file():
        routes.append(Mount("/", StaticFiles(directory=web_dir, html=True), name="web"))
    else:
        log.info("no web app at %s (build it with `make web`); serving the API only", web_dir)
    hosts = trusted_hosts(settings.allowed_hosts, settings.host)
    middleware = [] if hosts == ["*"] else [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    ]  # fmt: skip
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.service = service
    return app
