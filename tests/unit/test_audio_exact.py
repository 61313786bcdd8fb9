"""The audio helpers to the letter: dtypes and shapes that the pipeline relies on, the RMS gate
and the ring at their edges, the VAD's per-stream state, and file decoding's limits (8 channels
inclusive, a length the header hides, the exact errors)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxlive.audio.decode import MAX_FILE_CHANNELS, decode_file
from voxlive.audio.gate import RmsGate, rms
from voxlive.audio.resample import StreamResampler, resample, to_mono
from voxlive.audio.ring import RingBuffer
from voxlive.audio.vad import SileroVad, VadState, model_path
from voxlive.errors import FrameError


def test_to_mono_averages_channels_into_float32() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [0.25, 0.75]], np.float64)
    mono = to_mono(stereo)
    assert mono.dtype == np.float32 and mono.tolist() == [0.5, 0.0, 0.5]
    one = to_mono(np.array([[0.5], [0.25]], np.float64))
    assert one.dtype == np.float32 and one.tolist() == [0.5, 0.25]
    flat = to_mono(np.array([0.5, 0.25], np.float64))
    assert flat.dtype == np.float32 and flat.tolist() == [0.5, 0.25]


def test_one_shot_resampling_returns_float32_at_the_new_length() -> None:
    x = np.sin(np.arange(4_410) / 10).astype(np.float64)
    same = resample(x, 44_100, 44_100)
    assert same.dtype == np.float32 and np.array_equal(same, x.astype(np.float32))
    out = resample(x, 44_100, 16_000)
    assert out.dtype == np.float32 and len(out) == 1_600


def test_a_stream_resampler_flushed_before_any_audio_gives_nothing() -> None:
    r = StreamResampler(16_000)
    tail = r.flush()
    assert tail.dtype == np.float32 and tail.size == 0
    assert r.process(np.ones(441, np.float32), 44_100).dtype == np.float32
    assert r.flush().size > 0  # the filter's delay comes out at the end
    assert r.flush().size == 0  # once


def test_a_stream_resampler_restarts_when_the_rate_changes() -> None:
    r = StreamResampler(16_000)
    first = r.process(np.ones(4_410, np.float32), 44_100)
    again = r.process(np.ones(4_410, np.float32), 44_100)
    assert len(first) + len(again) + len(r.flush()) == 3_200
    assert len(r.process(np.ones(800, np.float32), 8_000)) + len(r.flush()) == 1_600


def test_rms_of_empty_single_and_tiny_signals() -> None:
    assert rms(np.zeros(0, np.float32)) == 0.0
    assert rms(np.array([-0.5], np.float32)) == 0.5
    tiny = rms(np.full(8, 1e-23, np.float32))  # its square underflows in float32
    assert tiny == pytest.approx(1e-23, rel=1e-6)


def test_the_rms_gate_lets_a_window_at_exactly_the_threshold_through() -> None:
    gate = RmsGate(0.25)
    assert not gate.is_ambient(np.full(10, 0.25, np.float32))
    assert gate.is_ambient(np.full(10, 0.2499, np.float32))
    assert not RmsGate(0.0).is_ambient(np.zeros(10, np.float32))


def test_a_ring_of_one_sample_works_and_holds_float32() -> None:
    ring = RingBuffer(1)
    ring.write(np.array([0.5, 0.25], np.float32))
    assert ring.view(1, 1).tolist() == [0.25] and ring.view(1, 1).dtype == np.float32
    with pytest.raises(
        ValueError, match=r"^capacity: expected a positive number of samples, got 0$"
    ):
        RingBuffer(0)


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


# ---- file decoding -----------------------------------------------------------------------------
def _encoded(samples: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def test_a_file_is_decoded_from_a_path_as_from_bytes(tmp_path: Path) -> None:
    data = _encoded(np.full(1_600, 0.5, np.float32), 16_000)
    (tmp_path / "a.wav").write_bytes(data)
    from_path = decode_file(tmp_path / "a.wav", 16_000)
    assert np.array_equal(from_path, decode_file(data, 16_000)) and len(from_path) == 1_600


def test_eight_channels_are_the_most_a_file_may_have() -> None:
    assert MAX_FILE_CHANNELS == 8
    out = decode_file(_encoded(np.full((441, 8), 0.5, np.float32), 44_100), 16_000)
    assert len(out) == 160  # 10 ms, resampled


def test_a_length_the_header_hides_is_bounded_by_the_running_count() -> None:
    flac = bytearray(_encoded(np.zeros(16_000 * 25, np.float32), 16_000, "FLAC"))
    flac[8 + 13] &= 0xF0  # STREAMINFO total samples = 0: "unknown"
    flac[8 + 14 : 8 + 18] = b"\x00\x00\x00\x00"
    with pytest.raises(FrameError) as err:
        decode_file(bytes(flac), 16_000, max_duration_ms=12_000)
    assert err.value.code == "too_long"
    assert err.value.message == "expected at most 12 s of audio, got 20.0 s or more"


def test_files_that_are_not_audio_or_not_finite_get_exact_errors() -> None:
    with pytest.raises(FrameError) as junk:
        decode_file(b"not audio at all", 16_000)
    assert junk.value.message == (
        "expected an audio file (WAV, FLAC, OGG or MP3), got data that libsndfile cannot decode "
        "(LibsndfileError)"
    )
    nan = io.BytesIO()
    sf.write(nan, np.array([0.0, np.nan], np.float32), 16_000, format="WAV", subtype="FLOAT")
    with pytest.raises(FrameError) as bad:
        decode_file(nan.getvalue(), 16_000)
    assert (bad.value.code, bad.value.message) == (
        "bad_audio_file", "expected finite samples, got NaN or Inf"
    )  # fmt: skip


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


def _float_wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_a_file_peaking_at_exactly_16_is_accepted_and_past_it_refused() -> None:
    ok = decode_file(_float_wav(np.array([0.0, 16.0, -16.0], np.float32), 16_000), 16_000)
    assert ok.tolist() == [0.0, 16.0, -16.0]
    with pytest.raises(FrameError) as loud:
        decode_file(_float_wav(np.array([0.0, 16.5], np.float32), 16_000), 16_000)
    assert loud.value.message == "expected samples within ±16 (full scale ±1), got 16.5"


def test_a_decoded_file_has_the_length_one_shot_resampling_gives() -> None:
    # 9903 frames at 96 kHz are 1650.5 samples at 16 kHz: soxr gives 1651 (half up), in one
    # shot and block by block; round() would say 1650. 9902 frames: 1650.33 -> 1650.
    for frames, want in [(9_903, 1_651), (9_902, 1_650), (3, 1), (15, 3)]:
        x = np.full(frames, 0.25, np.float32)
        out = decode_file(_float_wav(x, 96_000), 16_000)
        assert len(out) == want == len(resample(x, 96_000, 16_000)), frames


def test_a_stream_resampler_follows_a_change_of_rate_mid_stream() -> None:
    r = StreamResampler(16_000)
    a = r.process(np.ones(8_000, np.float32), 8_000)
    b = r.process(np.ones(48_000, np.float32), 48_000)  # a new filter for the new rate
    assert 15_000 < len(a) + len(b) + len(r.flush()) <= 32_000
    assert len(b) < 20_000  # 1 s at 48 kHz is 16000 samples, not the 96000 of the old ratio


def test_a_grown_ring_keeps_order_when_its_new_buffer_wraps_and_stays_float32() -> None:
    ring = RingBuffer(8)
    data = np.arange(30, dtype=np.float32)
    ring.write(data)  # holds 22..29
    ring.grow(12)  # 22 % 12 = 10: the kept samples wrap around the new buffer's end
    held = ring.view(22, 8)
    assert held.tolist() == data[22:30].tolist() and held.dtype == np.float32
    ring.write(data[:4] + 100)
    assert ring.view(22, 12).tolist() == [*data[22:30].tolist(), 100.0, 101.0, 102.0, 103.0]
    ring.grow(12)  # not larger: nothing changes
    assert ring.capacity == 12 and ring.view(22, 12).tolist()[0] == 22.0


def test_the_vad_defaults_to_16_khz() -> None:
    vad = SileroVad()
    assert vad.sample_rate == 16_000 and (vad.chunk, vad.context) == (512, 64)
