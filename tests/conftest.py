from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# A process that ran Ray ends without the interpreter's teardown (why: tests/ray_exit.py).
pytest_plugins = ["tests.ray_exit"]

# `make mutation` runs the property tests once per mutant: the same examples every time (a
# reproducible score) and no shrinking (a failing example is enough to kill a mutant).
settings.register_profile(
    "mutation",
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """--backend auto (the default) exports models to ONNX: into a folder of this test run, never
    ~/.cache (the variable reaches servers started in-process, as subprocesses and Ray replicas)."""
    old = os.environ.get("VOXLIVE_CACHE_DIR")
    os.environ["VOXLIVE_CACHE_DIR"] = str(tmp_path_factory.mktemp("voxlive-cache"))
    yield
    if old is None:
        os.environ.pop("VOXLIVE_CACHE_DIR", None)
    else:
        os.environ["VOXLIVE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised wav2vec2 classifier saved with save_pretrained.

    Random weights: honest for plumbing and speed, says nothing about accuracy.
    """
    from tests.fakes import save_tiny_wav2vec2

    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny-wav2vec2"))
