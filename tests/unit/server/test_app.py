"""The app in-process (server/app.py; Starlette's TestClient, the lifespan included): health,
readiness, metrics, POST /classify with its token, size and format checks, status access, the
Host allowlist, the /audio WebSocket and the static web app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.fakes import FakeClassifier
from tests.helpers import MS, tone, wav
from voxlive import __version__
from voxlive.server.app import create_app
from voxlive.server.webapp import find_web_dir
from voxlive.settings import Settings


def _client(**changes: Any) -> Iterator[TestClient]:
    settings = Settings(model="pitch", web_dir="/nonexistent", gate="rms", window_ms=200,
                        hop_ms=100).replace(**changes)  # fmt: skip
    app = create_app(settings, classifier=FakeClassifier(sample_rate=16_000))
    with TestClient(app, base_url="http://localhost") as c:
        for _ in range(500):
            if c.get("/readyz").status_code == 200:
                break
        yield c


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield from _client()


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert set(body.pop("capacity")) == {"streams", "load_streams", "utilization", "windows_per_s"}
    config = body.pop("config")  # what the page's exports record beside the results
    assert config == {
        "version": __version__, "smoothing": 4, "gate": "rms", "gate_rms": 0.01,
        "vad_threshold": 0.5, "vad_min_speech_ms": 100, "pitch_threshold_hz": 160.0,
    }  # fmt: skip
    assert body == {
        "status": "ready", "model": "fake", "backend": "fake", "labels": ["a", "b"],
        "device": "cpu", "dtype": "float32", "sample_rate": 16_000, "fallback": None,
        "window_ms": 200,
        "hop_ms": 100, "streams_open": 0, "max_streams": 64, "load": 0.0, "room": True,
        "live_hop_ms": 100,  # not paced: the server is not busy
    }  # fmt: skip
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "voxlive_streams_open 0.0" in metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")


def test_classify_returns_the_timeline(client: TestClient) -> None:
    r = client.post("/classify", content=wav(0.5))
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("model", "backend", "fallback", "duration_ms", "window_ms",
                                 "hop_ms")} == {
        "model": "fake", "backend": "fake", "fallback": None, "duration_ms": 500.0,
        "window_ms": 200, "hop_ms": 100,
    }  # fmt: skip
    assert [m["start_ms"] for m in body["results"]] == [0, 100, 200, 300]


def test_classify_refuses_empty_bad_and_oversized_bodies() -> None:
    body = wav(0.2)
    for c in _client(max_upload_bytes=len(body)):
        assert c.post("/classify", content=body).status_code == 200  # exactly the limit
        big = c.post("/classify", content=body + b"\x00")
        assert big.status_code == 413
        assert big.json() == {"error": {"code": "too_large",
                                        "message": f"body exceeds the limit of {len(body)} bytes"}}  # fmt: skip
        empty = c.post("/classify", content=b"")
        assert (empty.status_code, empty.json()["error"]["code"]) == (400, "empty_body")
        junk = c.post("/classify", content=b"not audio")
        assert (junk.status_code, junk.json()["error"]["code"]) == (400, "bad_audio_file")


def test_classify_needs_the_token_when_one_is_set() -> None:
    for c in _client(token="s3cret"):
        assert c.post("/classify", content=wav(0.2)).status_code == 401
        wrong = c.post("/classify", content=wav(0.2), headers={"Authorization": "Bearer x"})
        assert wrong.json()["error"]["code"] == "unauthorized"
        ok = c.post("/classify", content=wav(0.2), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.post("/classify?token=s3cret", content=wav(0.2)).status_code == 200


def test_a_loopback_server_refuses_other_host_names(client: TestClient) -> None:
    assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/healthz", headers={"host": "127.0.0.1:8000"}).status_code == 200


def test_the_web_app_is_served_when_built(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>voxlive</h1>")
    assert find_web_dir(str(tmp_path)) == tmp_path
    for c in _client(web_dir=str(tmp_path)):
        assert c.get("/").text == "<h1>voxlive</h1>"
    for c in _client():
        assert c.get("/").status_code == 404


def _get(c: TestClient, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    r = c.get(path, headers=headers)
    return r.status_code, (r.json() if path.startswith("/readyz") or r.status_code == 401 else None)


def test_status_access_token_guards_readyz_and_metrics() -> None:
    for c in _client(token="s3cret", status_access="token"):
        for path in ("/readyz", "/metrics"):
            assert _get(c, path) == (401, {"status": "unauthorized"})
            assert _get(c, path, "wrong") == (401, {"status": "unauthorized"})
            assert _get(c, path, "s3cret")[0] == 200
        # the query token that streams may use is not accepted for the status endpoints
        assert c.get("/readyz?token=s3cret").status_code == 401


def test_status_endpoints_are_public_by_default_even_with_a_token() -> None:
    for c in _client(token="s3cret"):
        assert _get(c, "/readyz")[0] == 200
        assert _get(c, "/metrics")[0] == 200


def _fallback_classifier() -> FakeClassifier:
    clf = FakeClassifier(sample_rate=16_000)
    clf._info = replace(clf.info, fallback="the hub is unreachable")
    return clf


def test_readyz_is_degraded_with_a_fallback_and_strict_makes_it_fail() -> None:
    settings = Settings(model="pitch", web_dir="/nonexistent", gate="rms")
    app = create_app(settings, classifier=_fallback_classifier())
    with TestClient(app, base_url="http://localhost") as c:
        for _ in range(500):
            if c.get("/readyz").status_code == 200:
                break
        r = c.get("/readyz")
        assert (r.status_code, r.json()["status"]) == (200, "degraded")
        for flag, status in [("1", 503), ("true", 503), ("yes", 503), ("0", 200), ("false", 200),
                             ("", 200)]:  # fmt: skip
            strict = c.get(f"/readyz?strict={flag}")
            assert (strict.status_code, strict.json()["status"]) == (status, "degraded"), flag
    for c in _client():  # a real model is not degraded: strict passes
        assert c.get("/readyz?strict=1").status_code == 200


def test_strict_readyz_needs_room_and_no_drain_while_plain_readyz_stays_ready() -> None:
    for c in _client(max_streams=2, agent_drain_at=0.5):
        service = c.app.state.service  # type: ignore[attr-defined]
        service.registry.connections.add(object())  # one of two slots: load 0.5, no room
        r = c.get("/readyz?strict=1")
        assert (r.status_code, r.json()["load"], r.json()["room"]) == (503, 0.5, False)
        assert c.get("/readyz").status_code == 200
        assert "voxlive_load 0.5" in c.get("/metrics").text  # what KEDA scales on
        service.registry.connections.clear()
        assert c.get("/readyz?strict=1").status_code == 200
        service.begin_drain()  # SIGTERM heard
        assert c.get("/readyz?strict=1").status_code == 503


def test_readyz_is_503_while_loading_and_a_failed_load_is_fatal() -> None:
    release = threading.Event()
    fatal: list[BaseException] = []

    def slow(settings: Settings) -> FakeClassifier:
        assert release.wait(10_000 * MS)
        return FakeClassifier(sample_rate=16_000)

    app = create_app(Settings(model="pitch", web_dir="/nonexistent"), loader=slow)
    with TestClient(app, base_url="http://localhost") as c:
        loading = c.get("/readyz")
        assert (loading.status_code, loading.json()["status"]) == (503, "loading")
        release.set()
        for _ in range(500):
            if c.get("/readyz").status_code == 200:
                break
        assert c.get("/readyz").json()["model"] == "fake"

    def broken(settings: Settings) -> FakeClassifier:
        raise OSError("no such model")

    app = create_app(Settings(model="pitch", web_dir="/nonexistent"), loader=broken,
                     on_fatal=fatal.append)  # fmt: skip
    with TestClient(app, base_url="http://localhost") as c:
        for _ in range(500):
            if c.get("/readyz").json()["status"] == "failed":
                break
        r = c.get("/readyz")
        assert (r.status_code, r.json()["error"]) == (503, "no such model")
    assert [str(e) for e in fatal] == ["no such model"]


def test_the_audio_route_is_a_websocket_and_classify_only_takes_post(client: TestClient) -> None:
    with client.websocket_connect("ws://localhost/audio") as ws:
        ws.send_json({"type": "start"})
        assert ws.receive_json()["type"] == "ready"
    assert client.get("/classify").status_code == 405


def test_without_a_built_web_app_the_log_says_how_to_build_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="voxlive.server.app"):
        create_app(Settings(model="pitch", web_dir="/nonexistent"), classifier=FakeClassifier())
    assert caplog.messages == [
        "no web app at /nonexistent (build it with `make web`); serving the API only"
    ]


def test_allowed_hosts_replace_the_loopback_names_and_www_is_not_redirected() -> None:
    for c in _client(allowed_hosts=("voxlive.example",)):
        assert c.get("/healthz", headers={"host": "voxlive.example"}).status_code == 200
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 400
    # Starlette would redirect a bare name to a listed www. name: only listed names are served
    for c in _client(allowed_hosts=("www.voxlive.example",)):
        bare = c.get("/healthz", headers={"host": "voxlive.example"}, follow_redirects=False)
        assert bare.status_code == 400
    for c in _client(host="0.0.0.0"):  # not loopback, no list: any Host
        assert c.get("/healthz", headers={"host": "anything.example"}).status_code == 200


def test_the_audio_endpoint_streams_over_the_app() -> None:
    settings = Settings(model="pitch", web_dir="/nonexistent", gate="none", window_ms=200,
                        hop_ms=100, max_speed=0)  # fmt: skip
    app = create_app(settings, classifier=FakeClassifier(sample_rate=16_000))
    with TestClient(app, base_url="http://localhost") as client:
        for _ in range(500):
            if client.get("/readyz").status_code == 200:
                break
        with client.websocket_connect("ws://localhost/audio") as ws:
            ws.send_json({"type": "start", "sample_rate": 16_000})
            ws.send_bytes(tone(200))
            ws.send_json({"type": "stop"})
            kinds = [ws.receive_json()["type"] for _ in range(4)]
    assert kinds == ["ready", "result", "segment", "end"]
