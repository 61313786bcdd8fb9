"""Where the built web app is: the one served at ``/``."""

from __future__ import annotations

from pathlib import Path

import voxlive

PACKAGED = Path(voxlive.__file__).resolve().parent / "web"  # put there by the wheel build
CHECKOUT = Path(voxlive.__file__).resolve().parents[2] / "web" / "dist"  # `make web` in a clone


def find_web_dir(setting: str) -> Path:
    """The folder to serve: ``setting`` when given (``--web-dir``), else the web app packaged in
    the wheel, else a source checkout's ``web/dist``. It may lack ``index.html`` (not built)."""
    if setting:
        return Path(setting)
    for candidate in (PACKAGED, CHECKOUT):
        if (candidate / "index.html").is_file():
            return candidate
    return CHECKOUT
