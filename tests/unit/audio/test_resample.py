"""Resampling (audio/resample.py): tones keep their frequency and level, what is above the new
Nyquist is removed, streaming matches one shot, a change of rate restarts the filter, and the
dtypes and lengths the pipeline relies on."""

from __future__ import annotations

import numpy as np

from voxlive.audio.resample import StreamResampler, resample, to_mono


def _tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def test_tone_keeps_frequency_and_level() -> None:
    y = resample(_tone(440, 48_000), 48_000, 16_000)
    assert len(y) == 16_000
    assert abs(_peak_hz(y, 16_000) - 440) < 2
    mid = y[2000:-2000]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.5 / np.sqrt(2)) < 0.01


def test_tone_above_new_nyquist_is_removed() -> None:
    y = resample(_tone(10_000, 48_000), 48_000, 16_000)  # 10 kHz > 8 kHz Nyquist
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) < 0.005  # no alias at 6 kHz


def test_streaming_matches_one_shot() -> None:
    x = _tone(300, 44_100, seconds=2.0)
    r = StreamResampler(16_000)
    parts = [r.process(x[i : i + 441], 44_100) for i in range(0, len(x), 441)]
    parts.append(r.flush())
    y = np.concatenate(parts)
    ref = resample(x, 44_100, 16_000)
    assert abs(len(y) - len(ref)) <= 1
    n = min(len(y), len(ref))
    assert np.max(np.abs(y[:n] - ref[:n])) < 1e-3


def test_same_rate_passes_through() -> None:
    x = _tone(300, 16_000)
    assert StreamResampler(16_000).process(x, 16_000) is x


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.ones(4, np.float32), -np.ones(4, np.float32) * 0.5], axis=1)
    np.testing.assert_allclose(to_mono(stereo), 0.25)
    assert to_mono(stereo[:, :1]).shape == (4,)


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


def test_a_stream_resampler_follows_a_change_of_rate_mid_stream() -> None:
    r = StreamResampler(16_000)
    a = r.process(np.ones(8_000, np.float32), 8_000)
    b = r.process(np.ones(48_000, np.float32), 48_000)  # a new filter for the new rate
    assert 15_000 < len(a) + len(b) + len(r.flush()) <= 32_000
    assert len(b) < 20_000  # 1 s at 48 kHz is 16000 samples, not the 96000 of the old ratio
