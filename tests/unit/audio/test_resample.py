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
