"""The Docker images, built and run without a Docker engine.

buildah builds deploy/backend.Dockerfile and deploy/frontend.Dockerfile on stand-in base images
made from Debian packages (images/standins.py), then runs each image's own entrypoint and command
on the host's loopback: the back end with the built-in pitch model (no network needed), and the
front end's nginx in front of it, checked with HTTP, a WebSocket stream and headless Chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import MS, free_port, load, stream_audio
from tests.images import standins
from tests.images.standins import STORE, buildah

pytestmark = pytest.mark.images

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "images"
BACKEND = "localhost/voxlive-backend:test"
FRONTEND = "localhost/voxlive-frontend:test"
FRONTEND_STAGE = "localhost/voxlive-frontend-build-stage:test"
TORCH = "torch==2.13.0"  # as pinned in constraints.txt; the CPU wheel must be in pip's find-links


def pip_settings() -> dict[str, str]:
    """This machine's pip settings (files, then environment, as pip ranks them)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    )
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        scope, _, name = key.partition(".")
        (env if scope == ":env:" else files)[name] = value.strip("'\"")
    return {**files, **env}


def build_options(tmp: Path) -> tuple[list[str], list[str]]:
    """Mounts that let pip and npm inside the builds reach what they reach on this machine: the
    CA bundle, pip's local indexes and wheels, as read-only volumes; and the back end's build
    arguments, which take torch from the local CPU wheel only (never from an index, which would
    offer a multi-GB CUDA build)."""
    settings = pip_settings()
    mounts: set[str] = set()
    for value in settings.values():
        for token in value.split():
            path = Path(token.removeprefix("file://"))
            if token.startswith(("/", "file:///")) and path.exists():
                # An index folder (…/simple) links to its files beside it: mount its parent.
                mounts.add(str(path.parent if path.name == "simple" else path))
    cafile = settings.get("cert") or "/etc/ssl/certs/ca-certificates.crt"
    mounts.add(cafile)
    links = settings.get("find-links", "").split()
    version = TORCH.partition("==")[2]
    if not any(Path(d).glob(f"torch-{version}+cpu-*.whl") for d in links):
        pytest.fail(f"expected the CPU wheel for {TORCH} in pip's find-links {links}")
    pip_conf = tmp / "pip.conf"
    pip_conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    npmrc = tmp / "npmrc"
    npmrc.write_text(f"cafile={cafile}\nfund=false\naudit=false\nupdate-notifier=false\n")
    # buildah leaves the mount points (empty) in the images built here: /etc/pip.conf,
    # /etc/npmrc and the folders under /opt. They change nothing in how the images run.
    volumes = [f"{m}:{m}:ro" for m in sorted(mounts)]
    volumes += [f"{pip_conf}:/etc/pip.conf:ro", f"{npmrc}:/etc/npmrc:ro"]
    options = [o for v in volumes for o in ("--volume", v)]
    backend_args = ["--build-arg", f"TORCH_INDEX_URL=file://{links[0]}",
                    "--build-arg", f"TORCH_VERSION={version}"]  # fmt: skip
    return options, backend_args


def build(dockerfile: str, tag: str, args: list[str], log: Path) -> float:
    """buildah bud with layer caching (keyed on each step and the files it copies); seconds."""
    t0 = time.monotonic()
    cmd = ["buildah", *STORE, "bud", "--isolation", "chroot", "--network", "host", "--layers",
           "--format", "docker", "--pull=never", *args, "-t", tag, "-f", str(ROOT / dockerfile), str(ROOT)]  # fmt: skip
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text()[-6000:]
        pytest.fail(f"building {dockerfile} failed ({log}):\n{tail}")
    return time.monotonic() - t0


def build_frontend(args: list[str]) -> float:
    """The build stage first, tagged, so that pruning keeps its layers (npm ci) cached; then the
    image, which finds that stage in the cache; seconds."""
    dockerfile = "deploy/frontend.Dockerfile"
    stage = build(
        dockerfile,
        FRONTEND_STAGE,
        [*args, "--target", "build"],
        ARTIFACTS / "frontend-stage-build.log",
    )
    return stage + build(dockerfile, FRONTEND, args, ARTIFACTS / "frontend-build.log")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Both images built on the stand-ins; the seconds each phase took."""
    if missing := standins.missing_tools():
        pytest.fail(
            f"the image test needs {', '.join(missing)}: run scripts/system-deps.sh "
            "(make test does), which installs them"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        python, node, nginx = pool.map(standins.ensure, ["python", "node", "nginx"])
    timings = {"standins_s": time.monotonic() - t0}
    options, backend_args = build_options(tmp_path_factory.mktemp("build"))
    with ThreadPoolExecutor(2) as pool:
        backend = pool.submit(
            build, "deploy/backend.Dockerfile", BACKEND,
            [*options, *backend_args, "--build-arg", f"PYTHON_IMAGE={python}"],
            ARTIFACTS / "backend-build.log",
        )  # fmt: skip
        args = [
            *options,
            "--build-arg",
            f"NODE_IMAGE={node}",
            "--build-arg",
            f"NGINX_IMAGE={nginx}",
        ]
        frontend = pool.submit(build_frontend, args)
        timings |= {"backend_build_s": backend.result(), "frontend_build_s": frontend.result()}
    # Layers of earlier builds that no image uses any more (the cache would otherwise only grow).
    subprocess.run(["buildah", *STORE, "rmi", "--prune"], capture_output=True)
    timings["total_build_s"] = time.monotonic() - t0
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1))
    return timings


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    container: str
    env: dict[str, str]
    config: dict[str, Any]  # the image's Docker config (Healthcheck, User, …)
    uid: int  # the user id the container's process runs as


def command_pid(parent: int) -> int | None:
    """The container's own process: the first descendant of ``buildah run`` that is not buildah's
    (buildah-chroot-runtime, buildah-chroot-exec)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    queue = list(children.get(parent, []))
    while queue:
        pid = queue.pop(0)
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if not Path(argv0.decode()).name.startswith("buildah"):
                return pid
        queue += children.get(pid, [])
    return None


@contextlib.contextmanager
def run_image(image: str, env: dict[str, str], url: str, ready: str) -> Iterator[Running]:
    """Run the image's own entrypoint and command (as its own user, with its environment plus
    ``env``) on the host's network; wait until GET ``url + ready`` answers 200; stop it with
    the image's stop signal, as Docker would."""
    config = json.loads(buildah("inspect", "--type", "image", image).stdout)["Docker"]["config"]
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    stop = signal.Signals[config.get("StopSignal") or "SIGTERM"]
    user = (config.get("User") or "0").partition(":")[0]
    container = buildah("from", "--pull=never", image).stdout.strip()
    log = ARTIFACTS / f"{image.rpartition('/')[2].replace(':', '-')}.log"
    options = [o for k, v in env.items() for o in ("--env", f"{k}={v}")]
    if user not in ("0", "root"):
        # buildah's chroot runner gives the process root-owned stdout/stderr pipes; Docker's
        # runtime (runc) hands them to the container's user, and nginx running as 101 relies on
        # that to reopen /dev/stderr through its log symlinks. Do the same, then drop to the user.
        drop = 'chown "$0" /proc/self/fd/1 /proc/self/fd/2 && exec setpriv --reuid "$0" --regid "$(id -g "$0")" --init-groups "$@"'
        command = ["/bin/sh", "-c", drop, user, *command]
        options += ["--user", "0"]
    cmd = ["buildah", *STORE, "run", "--isolation", "chroot", "--network", "host", *options,
           container, "--", *command]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + ready, timeout=2_000 * MS).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"{image} did not get ready at {url}{ready}:\n{log.read_text()[-4000:]}"
                )
            time.sleep(200 * MS)
        pid = command_pid(proc.pid)
        assert pid is not None, f"no process of {image} under buildah run {proc.pid}"
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(status.split("Uid:")[1].split()[0])
        yield Running(url, container, env, config, uid)
    finally:
        if (pid := command_pid(proc.pid)) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, stop)
        killed = False
        try:
            proc.wait(timeout=30_000 * MS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
        subprocess.run(["buildah", *STORE, "rm", container], capture_output=True)
    if killed:
        pytest.fail(f"{image} did not stop within 30 s of {stop.name}:\n{log.read_text()[-2000:]}")


def healthcheck(running: Running) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run in the running container (a second process in its
    file system, on the same network)."""
    test = running.config["Healthcheck"]["Test"]
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    env_args = [o for k, v in running.env.items() for o in ("--env", f"{k}={v}")]
    return subprocess.run(
        ["buildah", *STORE, "run", "--isolation", "chroot", "--network", "host", *env_args,
         running.container, "--", *command],
        capture_output=True, text=True, timeout=30_000 * MS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def backend(images: dict[str, float]) -> Iterator[Running]:
    port = free_port()
    env = {"VOXLIVE_HOST": "127.0.0.1", "VOXLIVE_PORT": str(port), "VOXLIVE_MODEL": "pitch",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    with run_image(BACKEND, env, f"http://127.0.0.1:{port}", "/readyz") as running:
        yield running


@pytest.fixture(scope="module")
def frontend(backend: Running) -> Iterator[Running]:
    port = free_port()
    env = {"VOXLIVE_BACKEND": backend.url, "VOXLIVE_FRONTEND_PORT": str(port)}
    with run_image(FRONTEND, env, f"http://127.0.0.1:{port}", "/") as running:
        yield running


async def test_backend_image_serves_and_classifies_a_stream(backend: Running) -> None:
    assert backend.uid == 10001  # the image's own non-root user
    check = healthcheck(backend)
    assert check.returncode == 0, check.stdout + check.stderr
    async with httpx.AsyncClient(base_url=backend.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"] == "pitch"
    female, rate = load("female_speech.wav")
    run = await stream_audio(backend.url.replace("http", "ws") + "/audio", female, rate, speed=4.0)
    assert run.of("end") and run.close_code == 1000
    assert [r["label"] for r in run.results if r["label"] != "ambient"].count("female") >= 5


async def test_frontend_image_serves_the_app_in_front_of_the_backend(frontend: Running) -> None:
    assert frontend.uid == 101  # the unprivileged nginx image's user
    check = healthcheck(frontend)
    assert check.returncode == 0, check.stdout + check.stderr
    async with httpx.AsyncClient(base_url=frontend.url) as client:
        index = await client.get("/")
        assert index.status_code == 200 and '<div id="root">' in index.text
        assert (await client.get("/readyz")).json()["model"] == "pitch"  # proxied
        assert (await client.get("/config.json")).json() == {}  # the page's own: same origin


async def test_browser_gets_a_label_through_the_frontend_image(
    frontend: Running, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.e2e.test_browser import launch, mic_file, open_page

    async with async_playwright() as pw:
        browser = await launch(pw, mic_file("female_speech.wav", tmp_path))
        try:
            page = await open_page(browser, frontend.url)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=20_000)
            await page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
        finally:
            await browser.close()
