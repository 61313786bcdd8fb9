"""Where the web app is served from (server/webapp.py): the wheel's copy before a checkout's,
``--web-dir`` before both."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxlive.server import webapp
from voxlive.server.webapp import find_web_dir


def test_the_packaged_web_app_comes_before_a_checkout_s(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    packaged, checkout = tmp_path / "packaged", tmp_path / "checkout"
    packaged.mkdir()
    checkout.mkdir()
    monkeypatch.setattr(webapp, "PACKAGED", packaged)
    monkeypatch.setattr(webapp, "CHECKOUT", checkout)
    assert find_web_dir("") == checkout  # neither built: the checkout's (where `make web` puts it)
    (checkout / "index.html").write_text("checkout")
    assert find_web_dir("") == checkout
    (packaged / "index.html").write_text("wheel")
    assert find_web_dir("") == packaged
    assert find_web_dir(str(tmp_path)) == tmp_path  # --web-dir wins
