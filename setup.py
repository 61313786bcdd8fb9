"""Packaging hook: the wheel carries the built web app, so `pip install voxlive` + `voxlive serve`
serves the page. Everything else about the package is in pyproject.toml.

Building a wheel (`make wheel`, `pip wheel .`, `python -m build`) builds web/ with npm (`npm ci`
when node_modules is missing, then `npm run build`) and copies web/dist into the package as
voxlive/web.
Editable installs (`pip install -e .`, what `make serve` does) skip this: the server then serves
the checkout's web/dist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"


def build_web() -> Path:
    dist = WEB / "dist"
    if not (WEB / "package.json").is_file():  # an sdist made without the web sources
        if (dist / "index.html").is_file():
            return dist
        raise RuntimeError(f"expected the web app's sources in {WEB} or a built {dist}")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("expected npm (Node.js 18+) to build the web app into the wheel")
    if not (WEB / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True)
    return dist


class BuildPyWithWeb(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "voxlive" / "web"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(build_web(), target)


setup(cmdclass={"build_py": BuildPyWithWeb})
