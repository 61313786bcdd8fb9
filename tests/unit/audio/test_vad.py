"""Silero VAD with per-stream state (audio/vad.py): speech scores high and a coffee shop low,
batched streams keep their own recurrent state, the same probabilities as the package's own
wrapper, ragged jobs, the model shipped with the package, one CPU thread that does not spin."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import load_chunks
from voxlive.audio.vad import SileroVad, VadState, model_path

CHUNK = 512


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad(16_000)


def test_speech_scores_high_and_a_coffee_shop_low(vad: SileroVad) -> None:
    female = vad.run([(vad.new_state(), load_chunks("female_speech.wav"))])[0]
    ambient = vad.run([(vad.new_state(), load_chunks("ambient_coffee_shop.wav"))])[0]
    assert np.mean(female >= 0.5) > 0.7
    assert np.mean(ambient >= 0.5) < 0.3


def test_batched_streams_keep_their_own_state(vad: SileroVad) -> None:
    """Three streams stepped together, in rounds whose batch size keeps changing, give exactly
    the probabilities each stream gets alone — the package's own wrapper would reset here."""
    names = ("female_speech.wav", "male_speech.wav", "ambient_coffee_shop.wav")
    audio = [load_chunks(n, 120) for n in names]
    alone = [vad.run([(vad.new_state(), a)])[0] for a in audio]

    states = [vad.new_state() for _ in names]
    got: list[list[float]] = [[], [], []]
    pos = [0, 0, 0]
    rounds = [(7, 3, 1), (0, 40, 9), (50, 0, 30), (63, 77, 80)]  # chunks per stream per round
    for counts in rounds:
        jobs, who = [], []
        for i, n in enumerate(counts):
            if n:
                jobs.append((states[i], audio[i][pos[i] * CHUNK : (pos[i] + n) * CHUNK]))
                who.append(i)
                pos[i] += n
        for i, probs in zip(who, vad.run(jobs), strict=True):
            got[i].extend(probs.tolist())
    for i in range(3):
        np.testing.assert_allclose(got[i], alone[i], atol=1e-5)


def test_matches_the_packages_own_wrapper_for_one_stream(vad: SileroVad) -> None:
    import torch

    threads = torch.get_num_threads()
    from silero_vad.utils_vad import OnnxWrapper  # its package sets torch threads to 1

    torch.set_num_threads(threads)
    audio = load_chunks("male_speech.wav", 60)
    ref = OnnxWrapper(str(__import__("voxlive.audio.vad").audio.vad.model_path()))
    expected = [float(ref(torch.from_numpy(c), 16_000)[0, 0]) for c in audio.reshape(-1, CHUNK)]
    ours = vad.run([(vad.new_state(), audio)])[0]
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_bad_shapes_and_rates_are_refused(vad: SileroVad) -> None:
    with pytest.raises(ValueError, match=r"expected chunks of shape \(1, 512\), got \(1, 100\)"):
        vad.step([vad.new_state()], np.zeros((1, 100), np.float32))
    with pytest.raises(ValueError, match="expected a sample rate of 16000 or 8000 Hz, got 44100"):
        SileroVad(44_100)


def test_vad_state_starts_and_resets_to_zeros_of_the_model_shape() -> None:
    s = VadState(64)
    assert s.state.shape == (2, 128) and s.state.dtype == np.float32
    assert s.context.shape == (64,) and s.context.dtype == np.float32
    s.state += 1
    s.context += 1
    s.reset()
    assert s.state.shape == (2, 128) and s.state.dtype == np.float32 and not s.state.any()
    assert s.context.shape == (64,) and s.context.dtype == np.float32 and not s.context.any()


def test_the_vad_model_ships_with_the_package() -> None:
    assert model_path().name == "silero_vad.onnx" and model_path().is_file()


def test_vad_runs_ragged_jobs_and_returns_float32_per_chunk() -> None:
    vad = SileroVad(16_000)
    assert vad.sample_rate == 16_000 and (vad.chunk, vad.context) == (512, 64)
    a, b = vad.new_state(), vad.new_state()
    rng = np.random.default_rng(0)
    out = vad.run([(a, rng.standard_normal(3 * 512).astype(np.float32) * 0.1),
                   (b, np.zeros(512, np.float32))])  # fmt: skip
    assert [p.shape for p in out] == [(3,), (1,)] and all(p.dtype == np.float32 for p in out)
    assert vad.run([]) == []
    with pytest.raises(ValueError, match=r"^vad: expected a sample rate of 16000 or 8000 Hz"):
        SileroVad(44_100)


def test_the_vad_runs_on_one_cpu_thread_without_spinning() -> None:
    """An idle server must use no CPU: ONNX Runtime's spinning threads would keep a core busy."""
    vad = SileroVad(8_000)
    options = vad._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert vad._session.get_providers() == ["CPUExecutionProvider"]
    assert (vad.chunk, vad.context) == (256, 32)


def test_a_missing_vad_package_is_named_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ImportError, match=r"^the silero-vad package is not installed \(pip install silero-vad\)$"
    ):
        model_path()

    class NoOrigin:
        origin = None

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: NoOrigin())
    with pytest.raises(ImportError, match="silero-vad"):
        model_path()


def test_the_vad_defaults_to_16_khz() -> None:
    vad = SileroVad()
    assert vad.sample_rate == 16_000 and (vad.chunk, vad.context) == (512, 64)
