"""The ASGI application: routes, lifespan, static web app."""

from __future__ import annotations

import asyncio
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

from voxlive.audio.decode import decode_file
from voxlive.errors import ClientError
from voxlive.inference.base import Classifier
from voxlive.pipeline.assembly import load_classifier
from voxlive.server.access import bearer, token_ok, trusted_hosts
from voxlive.server.connection import audio_endpoint
from voxlive.server.service import Service
from voxlive.server.webapp import find_web_dir
from voxlive.settings import Settings

log = logging.getLogger(__name__)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    service = _service(request)
    return JSONResponse(service.describe(), status_code=200 if service.ready else 503)


async def metrics(request: Request) -> Response:
    return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def classify(request: Request) -> Response:
    """POST an audio file as the body; get the JSON timeline the CLI prints."""
    service = _service(request)
    given = bearer(request.headers) or request.query_params.get("token")
    if not token_ok(service.settings.token, given):
        return _error(401, "unauthorized", "expected 'Authorization: Bearer <token>' or ?token=")
    pipeline = service.pipeline
    if not service.ready or pipeline is None:
        return _error(503, "not_ready", f"expected a ready server, got status {service.status!r}")
    limit = service.settings.max_upload_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return _error(413, "too_large", f"body exceeds the limit of {limit} bytes")
    if not body:
        return _error(400, "empty_body", "expected an audio file in the request body, got 0 bytes")
    info = pipeline.classifier.info
    try:
        samples = await asyncio.to_thread(
            decode_file, bytes(body), info.sample_rate, service.settings.max_upload_ms
        )
    except ClientError as exc:
        return _error(400, exc.code, exc.message)
    results = await pipeline.classify(samples)
    return JSONResponse(
        {
            "model": info.name,
            "backend": info.backend,
            "fallback": info.fallback,
            "duration_ms": round(len(samples) * 1000 / info.sample_rate, 3),
            "window_ms": service.settings.window_ms,
            "hop_ms": service.settings.hop_ms,
            "results": results,
        }
    )


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
