"""Silero VAD with per-stream state (audio/vad.py): speech scores high and a coffee shop low,
batched streams keep their own recurrent state, the same probabilities as the package's own
wrapper, ragged jobs, the model shipped with the package, one CPU thread that does not spin."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import load
from voxlive.audio.vad import SileroVad, VadState, model_path
from voxlive.pipeline.stream import Stream, StreamConfig

CHUNK = 512


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad(16_000)


def _speech(name: str, chunks: int | None = None) -> np.ndarray:
    audio, rate = load(name)
    assert rate == 16_000
    n = len(audio) // CHUNK if chunks is None else chunks
    return audio[: n * CHUNK]


def test_speech_scores_high_and_a_coffee_shop_low(vad: SileroVad) -> None:
    female = vad.run([(vad.new_state(), _speech("female_speech.wav"))])[0]
    ambient = vad.run([(vad.new_state(), _speech("ambient_coffee_shop.wav"))])[0]
    assert np.mean(female >= 0.5) > 0.7
    assert np.mean(ambient >= 0.5) < 0.3


def test_batched_streams_keep_their_own_state(vad: SileroVad) -> None:
    """Three streams stepped together, in rounds whose batch size keeps changing, give exactly
    the probabilities each stream gets alone — the package's own wrapper would reset here."""
    names = ("female_speech.wav", "male_speech.wav", "ambient_coffee_shop.wav")
    audio = [_speech(n, 120) for n in names]
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
    audio = _speech("male_speech.wav", 60)
    ref = OnnxWrapper(str(__import__("voxlive.audio.vad").audio.vad.model_path()))
    expected = [float(ref(torch.from_numpy(c), 16_000)[0, 0]) for c in audio.reshape(-1, CHUNK)]
    ours = vad.run([(vad.new_state(), audio)])[0]
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_bad_shapes_and_rates_are_refused(vad: SileroVad) -> None:
    with pytest.raises(ValueError, match=r"expected chunks of shape \(1, 512\), got \(1, 100\)"):
        vad.step([vad.new_state()], np.zeros((1, 100), np.float32))
    with pytest.raises(ValueError, match="expected a sample rate of 16000 or 8000 Hz, got 44100"):
        SileroVad(44_100)


# ---- the stream's VAD gate (probabilities given by hand: pure) -------------------------------
RATE = 16_000


def _stream(**kw: object) -> Stream:
    cfg = StreamConfig(sample_rate=RATE, window_ms=256, hop_ms=128, buffer_ms=1024,
                       labels=("a", "b"), gate="vad", vad_min_speech_ms=64, smoothing=1)  # fmt: skip
    return Stream("s", dataclasses.replace(cfg, **kw))  # type: ignore[arg-type]


def _answer(s: Stream, probs: list[float]) -> None:
    job = s.vad_job()
    assert job is not None
    assert len(job[1]) == len(probs) * CHUNK
    s.vad_done(np.asarray(probs, np.float32))


def test_windows_wait_for_the_vad_then_speech_goes_to_the_model() -> None:
    s = _stream()  # window = 8 chunks, hop = 4, speech needs 2 chunks
    s.push(np.zeros(12 * CHUNK, np.float32))  # windows at chunks 0-7 and 4-11
    assert s.gating == 2 and s.pending == 0 and s.pop_messages() == []
    _answer(s, [0.9, 0.9] + [0.1] * 10)  # speech only in the first window
    assert s.gating == 0 and s.pending == 1
    w = s.take()
    assert w is not None and w.index == 0 and s.take() is None
    s.complete(w.index, np.array([0.3, 0.7]))
    first, second = s.pop_messages()
    assert first["label"] == "b" and first["gated"] is False
    assert second["label"] == "ambient" and second["gated"] is True


def test_a_window_is_decided_only_when_the_vad_has_seen_all_of_it() -> None:
    s = _stream()
    s.push(np.zeros(8 * CHUNK, np.float32))
    job = s.vad_job()
    assert job is not None and s.vad_job() is None  # one job at a time per stream
    s.push(np.zeros(4 * CHUNK, np.float32))
    s.vad_done(np.zeros(8, np.float32))
    assert s.gating == 1  # window 2 (chunks 4-11) still needs chunks 8-11
    _answer(s, [1.0] * 4)
    assert s.gating == 0 and s.pending == 1


def test_finish_decides_the_tail_with_what_the_vad_saw() -> None:
    s = _stream()
    s.push(np.zeros(11 * CHUNK + 100, np.float32))  # one full window, then a 164 ms tail
    _answer(s, [0.0] * 9 + [0.9, 0.9])
    s.finish()  # the tail window ends at the last sample; its last 100 samples are no chunk
    assert s.gating == 0
    tail = s.take()
    assert tail is not None and s.take() is None  # the full window was ambient
    assert tail.index == 1 and len(tail.audio) == 8 * CHUNK


def test_the_vad_falling_behind_the_ring_skips_ahead_and_drops() -> None:
    s = _stream()  # the ring holds 1024 ms = 32 chunks
    s.push(np.zeros(40 * CHUNK, np.float32))
    job = s.vad_job()
    assert job is not None and len(job[1]) == 32 * CHUNK  # what is left of the audio
    assert s.stats.dropped_windows > 0
    s.vad_done(np.ones(32, np.float32))
    assert s.gating == 0


async def test_the_batcher_runs_the_vad_and_ambient_never_reaches_the_model() -> None:
    from voxlive.pipeline.batcher import Batcher, Wiring

    clf = FakeClassifier(row=(0.4, 0.6), sample_rate=RATE)
    batcher = Batcher(clf, max_batch=4, max_wait_ms=1, vad=SileroVad(RATE))
    cfg = StreamConfig(sample_rate=RATE, window_ms=1000, hop_ms=500, buffer_ms=20_000,
                       labels=("a", "b"), gate="vad", smoothing=1)  # fmt: skip
    settled = asyncio.Event()
    speech = Stream("speech", cfg, listener=Wiring(batcher, settled.set))
    ambient = Stream("ambient", cfg, listener=Wiring(batcher, settled.set))
    batcher.add(speech)
    batcher.add(ambient)
    batcher.start()
    try:
        speech.push(_speech("female_speech.wav", 140))  # 4.48 s: 7 windows and a tail
        ambient.push(np.zeros(140 * CHUNK, np.float32))
        for s in (speech, ambient):
            s.finish()
        async with asyncio.timeout(30):
            while any(s.gating or s.pending or s.inflight for s in (speech, ambient)):
                settled.clear()
                await settled.wait()
        labels = {s.id: [m["label"] for m in s.pop_messages()] for s in (speech, ambient)}
    finally:
        await batcher.close()
    assert set(labels["ambient"]) == {"ambient"} and len(labels["ambient"]) == 8
    assert len(labels["speech"]) == 8 and labels["speech"].count("b") >= 6
    assert clf.windows == len(labels["speech"]) - labels["speech"].count("ambient")


def test_a_window_ending_inside_a_chunk_does_not_wait_for_that_chunk() -> None:
    s = _stream(window_ms=250, hop_ms=250)  # 4000 samples: 7 whole chunks and 416 samples
    s.push(np.zeros(4000, np.float32))
    _answer(s, [0.9] * 7)  # the 8th chunk is not complete yet
    assert s.gating == 0 and s.pending == 1


def test_after_an_ambient_window_the_batcher_expects_no_window_from_the_stream() -> None:
    s = _stream()
    s.push(np.zeros(8 * CHUNK, np.float32))
    assert s.next_window_at(0.0) < float("inf")  # undecided: may well be speech
    _answer(s, [0.0] * 8)
    assert s.next_window_at(0.0) == float("inf")  # ambient: the next one most likely is too
    s.push(np.zeros(4 * CHUNK, np.float32))
    _answer(s, [0.9] * 4)
    assert s.pending == 1 and s.next_window_at(0.0) < float("inf")


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
