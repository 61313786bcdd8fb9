import json

import numpy as np
import pytest

from voxlive.errors import ClientError, FormatError, FrameError, MessageError, StateError
from voxlive.protocol.frames import DEFAULT_FORMAT, encode_wav_s16
from voxlive.protocol.session import (
    Audio,
    Session,
    Started,
    Stopped,
    parse_query,
    parse_start,
)


def _start(**kw: object) -> str:
    return json.dumps({"type": "start", **kw})


def test_explicit_start_then_audio_then_stop() -> None:
    s = Session(DEFAULT_FORMAT)
    [ev] = s.receive_text(_start(sample_rate=48_000, encoding="pcm_f32le", channels=2))
    assert isinstance(ev, Started) and ev.format.sample_rate == 48_000
    [audio] = s.receive_bytes(np.zeros(8, "<f4").tobytes())
    assert (
        isinstance(audio, Audio) and audio.samples.shape == (4, 2) and audio.sample_rate == 48_000
    )
    [stop] = s.receive_text('{"type": "stop"}')
    assert isinstance(stop, Stopped)


def test_audio_without_start_uses_default_format() -> None:
    s = Session(DEFAULT_FORMAT)
    started, audio = s.receive_bytes(b"\x00\x00" * 10)
    assert isinstance(started, Started) and started.format == DEFAULT_FORMAT
    assert isinstance(audio, Audio) and audio.samples.shape == (10, 1)


def test_wav_frames_describe_themselves() -> None:
    s = Session(DEFAULT_FORMAT)
    events = s.receive_bytes(encode_wav_s16(np.zeros(1024, np.float32), 44_100))
    assert isinstance(events[-1], Audio) and events[-1].sample_rate == 44_100


def test_second_start_is_an_error_and_stream_goes_on() -> None:
    s = Session(DEFAULT_FORMAT)
    s.receive_text(_start())
    with pytest.raises(
        StateError, match="expected audio frames or stop while streaming, got a second start"
    ):
        s.receive_text(_start())
    assert s.receive_bytes(b"\x00\x00")  # still streaming


@pytest.mark.parametrize(
    ("text", "error", "code"),
    [
        ("not json", MessageError, "bad_json"),
        ("[1, 2]", MessageError, "bad_message"),
        ('{"no_type": 1}', MessageError, "bad_message"),
        ('{"type": "dance"}', MessageError, "unknown_type"),
        ('{"type": 7}', MessageError, "bad_message"),
        ('{"type": "start", "sample_rate": 5}', FormatError, "unsupported_format"),
        ('{"type": "start", "bogus": 5}', FormatError, "unsupported_format"),
        ('{"type": "start", "token": 5}', FormatError, "unsupported_format"),
    ],
)
def test_bad_text(text: str, error: type[ClientError], code: str) -> None:
    with pytest.raises(error) as info:
        Session(DEFAULT_FORMAT).receive_text(text)
    assert info.value.code == code


def test_unsupported_start_closes_but_bad_frame_does_not() -> None:
    with pytest.raises(FormatError) as info:
        Session(DEFAULT_FORMAT).receive_text(_start(channels=6))
    assert info.value.close_code == 1003
    with pytest.raises(FrameError) as frame_info:
        Session(DEFAULT_FORMAT).receive_bytes(b"\x00")
    assert frame_info.value.close_code is None


def test_bad_wav_frame_is_not_fatal() -> None:
    bad = bytearray(encode_wav_s16(np.zeros(16, np.float32), 16_000))
    bad[24:28] = (1).to_bytes(4, "little")  # 1 Hz
    with pytest.raises(FrameError) as info:
        Session(DEFAULT_FORMAT).receive_bytes(bytes(bad))
    assert info.value.code == "unsupported_format" and info.value.close_code is None


def test_nothing_after_stop() -> None:
    s = Session(DEFAULT_FORMAT)
    s.receive_text('{"type":"stop"}')
    with pytest.raises(StateError):
        s.receive_bytes(b"\x00\x00")
    with pytest.raises(StateError):
        s.receive_text('{"type":"stop"}')


def test_query_parameters_preset_the_format() -> None:
    preset = parse_query({"sample_rate": "44100", "channels": "2"}, DEFAULT_FORMAT)
    assert preset is not None and preset.format.sample_rate == 44_100
    s = Session(DEFAULT_FORMAT, preset)
    with pytest.raises(StateError):
        s.receive_text(_start())
    assert parse_query({"other": "x"}, DEFAULT_FORMAT) is None
    with pytest.raises(FormatError, match="sample_rate: expected an integer"):
        parse_query({"sample_rate": "fast"}, DEFAULT_FORMAT)


def test_lossless_is_a_boolean_start_key_and_query_parameter() -> None:
    assert parse_start({"type": "start", "lossless": True}, DEFAULT_FORMAT).lossless
    assert not parse_start({"type": "start"}, DEFAULT_FORMAT).lossless
    preset = parse_query({"lossless": "true"}, DEFAULT_FORMAT)
    assert preset is not None and preset.lossless
    assert parse_query({"lossless": "0"}, DEFAULT_FORMAT) == Started(DEFAULT_FORMAT)
    with pytest.raises(FormatError, match="lossless"):
        parse_start({"type": "start", "lossless": "yes"}, DEFAULT_FORMAT)
    with pytest.raises(FormatError, match="lossless"):
        parse_query({"lossless": "maybe"}, DEFAULT_FORMAT)
