"""The Docker deployment, validated without a Docker engine: Compose's own parser, hadolint, and
the project's nginx config run for real by Debian's nginx in front of a real back end."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import MS, free_port, load, running_server, stream_audio

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEB_DIST = ROOT / "web" / "dist"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def compose_config() -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, check=True, env={**os.environ, "VOXLIVE_MODEL": "pitch"},
    )  # fmt: skip
    config: dict[str, Any] = json.loads(out.stdout)
    return config


def test_compose_file_is_valid_and_complete() -> None:
    config = compose_config()
    backend, frontend = config["services"]["backend"], config["services"]["frontend"]
    assert [(p["published"], p["target"]) for p in backend["ports"]] == [("8000", 8000)]
    assert [(p["published"], p["target"]) for p in frontend["ports"]] == [("8001", 8001)]
    assert frontend["depends_on"]["backend"]["condition"] == "service_healthy"
    assert "readyz" in " ".join(backend["healthcheck"]["test"])
    assert "healthcheck" in frontend
    assert (
        backend["volumes"][0]["source"] == "model-cache"
        and backend["volumes"][0]["target"] == "/data/hf"
    )
    assert "model-cache" in config["volumes"]
    assert backend["environment"]["VOXLIVE_MODEL"] == "pitch"  # settings come from the environment
    for key in ("VOXLIVE_DEVICE", "VOXLIVE_TOKEN", "VOXLIVE_MAX_STREAMS", "VOXLIVE_WINDOW_MS"):
        assert key in backend["environment"]
    assert backend["environment"]["VOXLIVE_CACHE_DIR"].startswith("/data/hf/")  # in the volume
    assert "ray-head" not in config["services"]  # the Ray head only with --profile ray
    assert frontend["build"]["args"]["REACT_APP_WS_URL"] == ""
    assert backend["build"]["dockerfile"].endswith("deploy/backend.Dockerfile")


def test_the_ray_profile_adds_a_head_node_in_the_backend_image() -> None:
    out = subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "--profile", "ray",
         "config", "--format", "json"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "VOXLIVE_EXTRAS": "[ray]", "VOXLIVE_ENGINE": "ray",
             "VOXLIVE_RAY_ADDRESS": "ray-head:6379"},
    )  # fmt: skip
    config = json.loads(out.stdout)
    head, backend = config["services"]["ray-head"], config["services"]["backend"]
    assert head["image"] == backend["image"] and head["command"][:3] == ["ray", "start", "--head"]
    assert backend["build"]["args"]["EXTRAS"] == "[ray]"
    assert backend["environment"]["VOXLIVE_ENGINE"] == "ray"
    assert backend["environment"]["VOXLIVE_RAY_ADDRESS"] == "ray-head:6379"


@pytest.mark.parametrize("dockerfile", ["deploy/backend.Dockerfile", "deploy/frontend.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    out = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / dockerfile)], capture_output=True, text=True
    )
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout


def test_backend_image_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "deploy/backend.Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/data/hf"]' in text and "ARG TORCH_INDEX_URL" in text


def render_nginx(tmp: Path, backend_url: str, port: int) -> Path:
    """The project's template, filled in as the image's entrypoint would, inside a minimal
    nginx.conf that Debian's nginx runs as an unprivileged foreground process."""
    server = (ROOT / "deploy/nginx/voxlive.conf.template").read_text()
    server = server.replace("${VOXLIVE_BACKEND}", backend_url)
    server = server.replace("listen ${VOXLIVE_FRONTEND_PORT};", f"listen 127.0.0.1:{port};")
    server = server.replace("root /usr/share/nginx/html;", f"root {tmp / 'html'};")
    shutil.copytree(WEB_DIST, tmp / "html")
    (tmp / "voxlive.conf").write_text(server)
    conf = tmp / "nginx.conf"
    # As root, nginx's workers would switch to "nobody", who cannot read pytest's private tmp.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""
{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/voxlive.conf;
}}
"""
    )
    return conf


@pytest.fixture
async def nginx_front(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    if not Path(NGINX).exists():
        pytest.fail("expected Debian's nginx: apt-get install nginx (.ci/run does)")
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(f"expected the built web app in {WEB_DIST}: run `make web`")
    async with running_server() as srv:
        port = free_port()
        conf = render_nginx(tmp_path, srv.url, port)
        check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        proc = await asyncio.create_subprocess_exec(
            NGINX, "-c", str(conf), stderr=asyncio.subprocess.PIPE
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(100):
                    try:
                        await client.get(url + "/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(50 * MS)
            yield url, srv
        finally:
            proc.terminate()
            await proc.wait()


async def test_nginx_serves_the_app_and_proxies_api_and_websocket(
    nginx_front: tuple[str, Any],
) -> None:
    url, srv = nginx_front
    async with httpx.AsyncClient(base_url=url) as client:
        index = await client.get("/")
        assert index.status_code == 200 and '<div id="root">' in index.text
        deep = await client.get("/some/client/route")
        assert deep.status_code == 200 and '<div id="root">' in deep.text
        worklet = [
            p for p in (WEB_DIST / "assets").iterdir() if p.name.startswith("capture-worklet")
        ]
        js = await client.get(f"/assets/{worklet[0].name}")
        assert js.headers["content-type"].startswith(("application/javascript", "text/javascript"))
        assert "immutable" in js.headers["cache-control"]
        assert (await client.get("/readyz")).json()["model"] == "pitch"
        metrics = await client.get("/metrics")  # not public: the page's fallback answers it
        assert "voxlive_" not in metrics.text
        # No run-time config: the page's own empty one (same origin), not a 404.
        assert (await client.get("/config.json")).json() == {}
    female, rate = load("female_speech.wav")
    run = await stream_audio(url.replace("http", "ws") + "/audio", female, rate, speed=4.0)
    assert run.of("end") and run.close_code == 1000
    assert [r["label"] for r in run.results if r["label"] != "ambient"].count("female") >= 5
    assert srv.service.metrics.streams_total._value.get() == 1


@pytest.mark.e2e
async def test_browser_through_nginx_gets_results(
    nginx_front: tuple[str, Any], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.e2e.test_browser import launch, mic_file, open_page

    url, _ = nginx_front
    async with async_playwright() as pw:
        browser = await launch(pw, mic_file("female_speech.wav", tmp_path))
        try:
            page = await open_page(browser, url)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=15_000)
        finally:
            await browser.close()


def test_entrypoint_writes_the_runtime_config(tmp_path: Path) -> None:
    script = (ROOT / "deploy/nginx/40-voxlive-config.sh").read_text()
    script = script.replace("/usr/share/nginx/html", str(tmp_path))
    env = {**os.environ, "VOXLIVE_PUBLIC_WS_URL": "wss://voice.example.org/audio"}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "wsUrl": "wss://voice.example.org/audio"
    }
