"""The HTTP side of the app in-process (Starlette's TestClient, the lifespan included): health,
readiness, metrics, POST /classify with its token, size and format checks, the Host allowlist
and the static web app."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from fakes import FakeClassifier
from voxlive.server.app import create_app
from voxlive.server.webapp import find_web_dir
from voxlive.settings import Settings


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.full(int(rate * seconds), 0.25, np.float32), rate, format="WAV")
    return buf.getvalue()


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield from _client()


def _client(**changes: Any) -> Iterator[TestClient]:
    settings = Settings(model="pitch", web_dir="/nonexistent", gate="rms", window_ms=200,
                        hop_ms=100).replace(**changes)  # fmt: skip
    app = create_app(settings, classifier=FakeClassifier(sample_rate=16_000))
    with TestClient(app, base_url="http://localhost") as c:
        for _ in range(500):
            if c.get("/readyz").status_code == 200:
                break
        yield c


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert set(body.pop("capacity")) == {"streams", "load_streams", "utilization", "windows_per_s"}
    assert body == {
        "status": "ready", "model": "fake", "backend": "fake", "labels": ["a", "b"],
        "device": "cpu", "sample_rate": 16_000, "fallback": None, "window_ms": 200,
        "hop_ms": 100, "streams_open": 0, "max_streams": 64,
    }  # fmt: skip
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "voxlive_streams_open 0.0" in metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")


def test_classify_returns_the_timeline(client: TestClient) -> None:
    r = client.post("/classify", content=_wav(0.5))
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("model", "backend", "fallback", "duration_ms", "window_ms",
                                 "hop_ms")} == {
        "model": "fake", "backend": "fake", "fallback": None, "duration_ms": 500.0,
        "window_ms": 200, "hop_ms": 100,
    }  # fmt: skip
    assert [m["start_ms"] for m in body["results"]] == [0, 100, 200, 300]


def test_classify_refuses_empty_bad_and_oversized_bodies() -> None:
    wav = _wav(0.2)
    for c in _client(max_upload_bytes=len(wav)):
        assert c.post("/classify", content=wav).status_code == 200  # exactly the limit
        big = c.post("/classify", content=wav + b"\x00")
        assert big.status_code == 413
        assert big.json() == {"error": {"code": "too_large",
                                        "message": f"body exceeds the limit of {len(wav)} bytes"}}  # fmt: skip
        empty = c.post("/classify", content=b"")
        assert (empty.status_code, empty.json()["error"]["code"]) == (400, "empty_body")
        junk = c.post("/classify", content=b"not audio")
        assert (junk.status_code, junk.json()["error"]["code"]) == (400, "bad_audio_file")


def test_classify_needs_the_token_when_one_is_set() -> None:
    for c in _client(token="s3cret"):
        assert c.post("/classify", content=_wav(0.2)).status_code == 401
        wrong = c.post("/classify", content=_wav(0.2), headers={"Authorization": "Bearer x"})
        assert wrong.json()["error"]["code"] == "unauthorized"
        ok = c.post("/classify", content=_wav(0.2), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.post("/classify?token=s3cret", content=_wav(0.2)).status_code == 200


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
