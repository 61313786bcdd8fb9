"""File decoding for uploads (audio/decode.py), bounded before it is spent: rate, channels,
duration and work (samples × channels at the file's rate) from the header, the running count
while decoding, a stop between blocks, memory at the model's rate, the length one-shot
resampling gives, and the exact errors."""

from __future__ import annotations

import io
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxlive.audio.decode import (
    BLOCK_SAMPLES,
    MAX_FILE_CHANNELS,
    Control,
    DecodeStopped,
    decode_file,
    max_work,
)
from voxlive.audio.resample import resample
from voxlive.errors import FrameError
from voxlive.protocol.frames import encode_wav_s16


def encoded(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("rate", [1, 7_999, 192_001])
def test_sample_rates_outside_the_range_are_refused(rate: int) -> None:
    with pytest.raises(FrameError, match=rf"8000\.\.192000 Hz, got {rate} Hz") as err:
        decode_file(encode_wav_s16(np.zeros(4000, np.float32), rate), 16_000)
    assert err.value.code == "bad_audio_file"


@pytest.mark.parametrize("rate", [8_000, 192_000])
def test_sample_rates_at_the_range_ends_are_decoded(rate: int) -> None:
    out = decode_file(encode_wav_s16(np.zeros(rate // 10, np.float32), rate), 16_000)
    assert len(out) == 1_600


def test_duration_limit_is_inclusive_and_read_from_the_header() -> None:
    one_s = encode_wav_s16(np.zeros(16_000, np.float32), 16_000)
    assert len(decode_file(one_s, 16_000, max_duration_ms=1_000)) == 16_000
    with pytest.raises(FrameError, match=r"at most 0\.999 s of audio, got 1\.0 s") as err:
        decode_file(one_s, 16_000, max_duration_ms=999)
    assert err.value.code == "too_long"


def test_a_small_flac_of_long_silence_is_refused_before_decoding() -> None:
    flac = encoded(np.zeros(16_000 * 700, np.float32), 16_000, "FLAC")  # 700 s
    assert len(flac) < 200_000
    with pytest.raises(FrameError, match=r"got 700\.0 s"):
        decode_file(flac, 16_000, max_duration_ms=600_000)


def test_a_header_that_hides_its_length_is_still_bounded() -> None:
    wav = bytearray(encode_wav_s16(np.zeros(16_000 * 3, np.float32), 16_000))
    struct.pack_into("<I", wav, 40, 0xFFFFFFFF)  # data size "unknown", as streaming writers do
    struct.pack_into("<I", wav, 4, 0xFFFFFFFF)
    with pytest.raises(FrameError, match="at most 2 s of audio"):
        decode_file(bytes(wav), 16_000, max_duration_ms=2_000)


def test_too_many_channels_are_refused() -> None:
    with pytest.raises(FrameError, match=r"expected 1\.\.8 channels, got 9"):
        decode_file(encoded(np.zeros((100, 9), np.float32), 16_000), 16_000)


def test_blockwise_decoding_equals_one_shot_resampling() -> None:
    import soxr

    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(44_100 * 25)).astype(np.float32)  # 25 s: five blocks
    expected = soxr.resample(x, 44_100, 16_000, quality="HQ")
    out = decode_file(encoded(x, 44_100, subtype="FLOAT"), 16_000)
    assert len(out) == len(expected)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_huge_float_samples_are_refused_not_turned_into_nan() -> None:
    x = np.array([0.0, 3.4e38, -3.4e38, 0.0] * 100, np.float32)
    with pytest.raises(FrameError, match=r"got 3\.4e\+38"):
        decode_file(encoded(x, 44_100, subtype="FLOAT"), 16_000)


def test_a_file_is_decoded_from_a_path_as_from_bytes(tmp_path: Path) -> None:
    data = encoded(np.full(1_600, 0.5, np.float32), 16_000)
    (tmp_path / "a.wav").write_bytes(data)
    from_path = decode_file(tmp_path / "a.wav", 16_000)
    assert np.array_equal(from_path, decode_file(data, 16_000)) and len(from_path) == 1_600


def test_eight_channels_are_the_most_a_file_may_have() -> None:
    assert MAX_FILE_CHANNELS == 8
    out = decode_file(encoded(np.full((441, 8), 0.5, np.float32), 44_100), 16_000)
    assert len(out) == 160  # 10 ms, resampled


def test_a_length_the_header_hides_is_bounded_by_the_running_count() -> None:
    flac = bytearray(encoded(np.zeros(16_000 * 25, np.float32), 16_000, "FLAC"))
    flac[8 + 13] &= 0xF0  # STREAMINFO total samples = 0: "unknown"
    flac[8 + 14 : 8 + 18] = b"\x00\x00\x00\x00"
    with pytest.raises(FrameError) as err:
        decode_file(bytes(flac), 16_000, max_duration_ms=12_000)
    assert err.value.code == "too_long"
    assert err.value.message == "expected at most 12 s of audio, got 16.4 s or more"


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


def test_a_file_peaking_at_exactly_16_is_accepted_and_past_it_refused() -> None:
    ok = decode_file(
        encoded(np.array([0.0, 16.0, -16.0], np.float32), 16_000, subtype="FLOAT"), 16_000
    )
    assert ok.tolist() == [0.0, 16.0, -16.0]
    with pytest.raises(FrameError) as loud:
        decode_file(encoded(np.array([0.0, 16.5], np.float32), 16_000, subtype="FLOAT"), 16_000)
    assert loud.value.message == "expected samples within ±16 (full scale ±1), got 16.5"


def test_a_decoded_file_has_the_length_one_shot_resampling_gives() -> None:
    # 9903 frames at 96 kHz are 1650.5 samples at 16 kHz: soxr gives 1651 (half up), in one
    # shot and block by block; round() would say 1650. 9902 frames: 1650.33 -> 1650.
    for frames, want in [(9_903, 1_651), (9_902, 1_650), (3, 1), (15, 3)]:
        x = np.full(frames, 0.25, np.float32)
        out = decode_file(encoded(x, 96_000, subtype="FLOAT"), 16_000)
        assert len(out) == want == len(resample(x, 96_000, 16_000)), frames


def test_the_work_limit_is_the_duration_limit_at_48_khz_stereo() -> None:
    assert max_work(600_000) == 57_600_000  # 10 min of 48 kHz stereo
    one_s_stereo = encoded(np.zeros((48_000, 2), np.float32), 48_000, "FLAC")
    assert len(decode_file(one_s_stereo, 16_000, max_duration_ms=1_000)) == 16_000


def test_a_high_rate_many_channel_file_is_refused_by_its_work_from_the_header() -> None:
    """0.1 s at 192 kHz × 8 channels is within 1 s of audio but costs 153,600 samples ×
    channels to decode, more than 1 s of 48 kHz stereo (96,000): refused before a block."""
    flac = encoded(np.zeros((19_200, 8), np.float32), 192_000, "FLAC")
    control = Control()
    with pytest.raises(FrameError) as err:
        decode_file(flac, 16_000, max_duration_ms=1_000, control=control)
    assert err.value.code == "too_much_audio"
    assert err.value.message == (
        "expected at most 96000 samples × channels to decode (1 s at 48 kHz stereo), got "
        "153600 (0.1 s at 192000 Hz × 8 channels)"
    )
    assert control.blocks == 0 and control.done.is_set()


def test_work_a_header_hides_is_bounded_by_the_running_count() -> None:
    """3 s of 96 kHz stereo with its length hidden, against 3 s of audio (288,000 frames) and
    3 s of 48 kHz stereo (288,000 samples × channels): the second block passes the work."""
    flac = bytearray(encoded(np.zeros((96_000 * 3, 2), np.float32), 96_000, "FLAC"))
    flac[8 + 13] &= 0xF0  # STREAMINFO total samples = 0: "unknown"
    flac[8 + 14 : 8 + 18] = b"\x00\x00\x00\x00"
    control = Control()
    with pytest.raises(FrameError) as err:
        decode_file(bytes(flac), 16_000, max_duration_ms=3_000, control=control)
    assert err.value.message == (
        "expected at most 288000 samples × channels to decode (3 s at 48 kHz stereo), got "
        "524288 or more (2.7 s at 96000 Hz × 2 channels)"
    )
    assert control.blocks == 2


def test_a_decode_stops_at_the_next_block_past_its_deadline() -> None:
    x = np.zeros((48_000 * 30, 2), np.float32)  # 30 s of stereo: 11 blocks
    blocks = -(-x.size // BLOCK_SAMPLES)
    assert blocks == 11
    control = Control(deadline=5.0, clock=lambda: 10.0 if control.blocks >= 3 else 0.0)
    with pytest.raises(DecodeStopped, match="deadline"):
        decode_file(encoded(x, 48_000, "FLAC"), 16_000, control=control)
    assert control.blocks == 3 and control.done.is_set()
    stopped = Control()
    stopped.stop()
    with pytest.raises(DecodeStopped, match="stopped"):
        decode_file(encoded(x, 48_000, "FLAC"), 16_000, control=stopped)
    assert stopped.blocks == 0


def test_a_decode_on_another_thread_stops_within_a_block_of_being_asked() -> None:
    flac = encoded(np.zeros((48_000 * 600, 2), np.float32), 48_000, "FLAC")  # 220 blocks
    control = Control()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            decode_file(flac, 16_000, max_duration_ms=600_000, control=control)
        except BaseException as exc:  # the test reads it
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while control.blocks < 2 and time.monotonic() < deadline:
        time.sleep(0.0005)
    control.stop()
    at_stop = control.blocks
    thread.join(5)
    assert not thread.is_alive() and control.done.is_set()
    assert isinstance(raised[0], DecodeStopped)
    assert at_stop <= control.blocks <= at_stop + 1 < 220
