"""The wheel is what `pip install voxlive` gets: built here, installed into a fresh venv outside
the repository, it must serve the page on its own (no checkout, no npm at run time)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import MS, free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.packaging, pytest.mark.slow]


def test_the_wheel_installed_in_a_fresh_venv_serves_the_page(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch: may hold stale modules
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("voxlive-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "voxlive/web/index.html" in names
    assert any(re.fullmatch(r"voxlive/web/assets/.+\.js", n) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet",
                    "-c", str(ROOT / "constraints.txt"), str(wheel)],
                   check=True, env=env, cwd=tmp_path)  # fmt: skip

    home = tmp_path / "elsewhere"  # not the repository: no web/dist to find by accident
    home.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(venv / "bin/voxlive"), "serve", "--model", "pitch", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=home, env={**env, "HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        alive = lambda: server.poll() is None  # noqa: E731
        try:
            asyncio.run(wait_ready(url, timeout_s=120, alive=alive, what="installed wheel"))
        except RuntimeError:
            pytest.fail(log.read_text())
        page = httpx.get(url + "/")
        assert page.status_code == 200 and '<div id="root">' in page.text
        (script,) = re.findall(r'src="\.?/?(assets/[^"]+\.js)"', page.text)
        asset = httpx.get(f"{url}/{script}")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    finally:
        server.terminate()
        server.wait(30_000 * MS)
        shutil.rmtree(venv, ignore_errors=True)  # about 1.5 GB: do not keep it in pytest's tmp
