"""The protocol's message order (protocol/order.py): start, audio and stop in the allowed
order, start keys and query parameters, every client error's exact code and message, text
frames measured in bytes at the limit, a stream's audio rate fixed by its first frame, the
golden client messages accepted, and arbitrary text raising only the documented errors."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import golden_messages
from voxlive.errors import ClientError, FormatError, FrameError, MessageError, StateError
from voxlive.protocol.frames import (
    DEFAULT_FORMAT,
    AudioFormat,
    encode_wav_s16,
)
from voxlive.protocol.order import (
    MAX_TEXT_BYTES,
    Audio,
    MessageOrder,
    OrderState,
    Started,
    Stopped,
    parse_query,
    parse_start,
)


def _start(**kw: object) -> str:
    return json.dumps({"type": "start", **kw})


def test_explicit_start_then_audio_then_stop() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    [ev] = s.receive_text(_start(sample_rate=48_000, encoding="pcm_f32le", channels=2))
    assert isinstance(ev, Started) and ev.format.sample_rate == 48_000
    [audio] = s.receive_bytes(np.zeros(8, "<f4").tobytes())
    assert (
        isinstance(audio, Audio) and audio.samples.shape == (4, 2) and audio.sample_rate == 48_000
    )
    [stop] = s.receive_text('{"type": "stop"}')
    assert isinstance(stop, Stopped)


def test_audio_without_start_uses_default_format() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    started, audio = s.receive_bytes(b"\x00\x00" * 10)
    assert isinstance(started, Started) and started.format == DEFAULT_FORMAT
    assert isinstance(audio, Audio) and audio.samples.shape == (10, 1)


def test_wav_frames_describe_themselves() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    events = s.receive_bytes(encode_wav_s16(np.zeros(1024, np.float32), 44_100))
    assert isinstance(events[-1], Audio) and events[-1].sample_rate == 44_100


def test_second_start_is_an_error_and_stream_goes_on() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
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
        MessageOrder(DEFAULT_FORMAT).receive_text(text)
    assert info.value.code == code


def test_unsupported_start_closes_but_bad_frame_does_not() -> None:
    with pytest.raises(FormatError) as info:
        MessageOrder(DEFAULT_FORMAT).receive_text(_start(channels=6))
    assert info.value.close_code == 1003
    with pytest.raises(FrameError) as frame_info:
        MessageOrder(DEFAULT_FORMAT).receive_bytes(b"\x00")
    assert frame_info.value.close_code is None


def test_bad_wav_frame_is_not_fatal() -> None:
    bad = bytearray(encode_wav_s16(np.zeros(16, np.float32), 16_000))
    bad[24:28] = (1).to_bytes(4, "little")  # 1 Hz
    with pytest.raises(FrameError) as info:
        MessageOrder(DEFAULT_FORMAT).receive_bytes(bytes(bad))
    assert info.value.code == "unsupported_format" and info.value.close_code is None


def test_nothing_after_stop() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    s.receive_text('{"type":"stop"}')
    with pytest.raises(StateError):
        s.receive_bytes(b"\x00\x00")
    with pytest.raises(StateError):
        s.receive_text('{"type":"stop"}')


def test_query_parameters_preset_the_format() -> None:
    preset = parse_query({"sample_rate": "44100", "channels": "2"}, DEFAULT_FORMAT)
    assert preset is not None and preset.format.sample_rate == 44_100
    s = MessageOrder(DEFAULT_FORMAT, preset)
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


# ---- the client's errors to the letter (they are sent verbatim) ----------------------------------
@pytest.mark.parametrize(
    ("text", "error", "code", "message"),
    [
        ("not json", MessageError, "bad_json",
         "expected a JSON object, got text that is not JSON (8 chars)"),
        ("[1, 2]", MessageError, "bad_message", "expected a JSON object, got list"),
        ('{"type": 7}', MessageError, "bad_message", "expected a string 'type' field, got 7"),
        ('{"x": 1}', MessageError, "bad_message", "expected a string 'type' field, got None"),
        ('{"type": "' + "d" * 50 + '"}', MessageError, "unknown_type",
         "expected type 'start' or 'stop', got '" + "d" * 40 + "'"),
        ('{"type": "start", "bogus": 5, "alpha": 1}', FormatError, "unsupported_format",
         "start: expected keys among ['acks', 'channels', 'encoding', 'last_seq', 'lossless', "
         "'replay_from', 'resume_token', 'sample_rate', 'stream_id', 'token', 'type'], "
         "got unknown ['alpha', 'bogus']"),
        ('{"type": "start", "replay_from": -1}', FormatError, "unsupported_format",
         "start: expected replay_from to be an integer >= 0, got -1"),
        ('{"type": "start", "acks": "yes"}', FormatError, "unsupported_format",
         "start: expected acks to be true or false, got 'yes'"),
        ('{"type": "start", "token": 5}', FormatError, "unsupported_format",
         "start: expected token to be a string, got int"),
        ('{"type": "start", "stream_id": []}', FormatError, "unsupported_format",
         "start: expected stream_id to be a string, got list"),
        ('{"type": "start", "last_seq": "3"}', FormatError, "unsupported_format",
         "start: expected last_seq to be an integer >= -1, got '3'"),
        ('{"type": "start", "last_seq": true}', FormatError, "unsupported_format",
         "start: expected last_seq to be an integer >= -1, got True"),
        ('{"type": "start", "encoding": "mp3"}', FormatError, "unsupported_format",
         "encoding: expected one of ['pcm_f32le', 'pcm_s16le'], got 'mp3'"),
        ('{"type": "start", "channels": "2"}', FormatError, "unsupported_format",
         "channels: expected 1 or 2, got '2'"),
        ('{"type": "start", "sample_rate": 1.5}', FormatError, "unsupported_format",
         "sample_rate: expected an integer in Hz, got 1.5"),
    ],
)  # fmt: skip
def test_bad_text_gets_its_exact_code_and_message(
    text: str, error: type[ClientError], code: str, message: str
) -> None:
    with pytest.raises(error) as info:
        MessageOrder(DEFAULT_FORMAT).receive_text(text)
    assert (info.value.code, info.value.message) == (code, message)
    assert info.value.close_code == (1003 if error is FormatError else None)


def test_nothing_is_accepted_after_stop_and_the_errors_say_so() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    s.receive_text('{"type": "stop"}')
    assert s.state is OrderState.STOPPED
    with pytest.raises(StateError) as again:
        s.receive_text('{"type": "stop"}')
    assert again.value.message == "expected nothing after stop, got another stop"
    with pytest.raises(StateError) as audio:
        s.receive_bytes(b"\x00\x00")
    assert audio.value.message == "expected nothing after stop, got an audio frame"
    assert audio.value.code == "unexpected_message"


def test_stop_before_start_starts_with_the_default_format_first() -> None:
    started, stopped = MessageOrder(DEFAULT_FORMAT).receive_text('{"type": "stop"}')
    assert started == Started(DEFAULT_FORMAT)
    assert type(stopped).__name__ == "Stopped"


def test_start_carries_token_stream_id_and_last_seq() -> None:
    text = json.dumps({"type": "start", "token": "t", "stream_id": "abc", "last_seq": 7,
                       "sample_rate": 8_000, "encoding": "pcm_f32le", "channels": 2})  # fmt: skip
    [started] = MessageOrder(DEFAULT_FORMAT).receive_text(text)
    assert started == Started(AudioFormat(8_000, "pcm_f32le", 2), "t", "abc", 7)
    assert parse_start({"type": "start"}, DEFAULT_FORMAT) == Started(DEFAULT_FORMAT)


def test_query_parameters_carry_the_same_keys_as_start() -> None:
    q = {"sample_rate": "8000", "channels": "2", "last_seq": "-1", "stream_id": "abc",
         "token": "t", "type": "start", "other": "ignored"}  # fmt: skip
    preset = parse_query(q, DEFAULT_FORMAT)
    assert preset == Started(AudioFormat(8_000, "pcm_s16le", 2), "t", "abc", -1)
    assert parse_query({"type": "start", "other": "1"}, DEFAULT_FORMAT) is None
    with pytest.raises(FormatError) as info:
        parse_query({"last_seq": "x"}, DEFAULT_FORMAT)
    assert info.value.message == "last_seq: expected an integer, got 'x'"


def test_a_preset_stream_is_streaming_in_its_format_and_refuses_a_start() -> None:
    preset = Started(AudioFormat(8_000, "pcm_f32le", 1))
    s = MessageOrder(DEFAULT_FORMAT, preset)
    assert s.state is OrderState.STREAMING and s.format == preset.format
    [audio] = s.receive_bytes(np.zeros(2, "<f4").tobytes())  # no Started: ready was sent
    assert isinstance(audio, Audio) and audio.sample_rate == 8_000
    with pytest.raises(StateError, match="got a second start"):
        s.receive_text('{"type": "start"}')


def test_a_wav_frame_at_another_rate_is_refused_and_a_bad_wav_is_a_frame_error() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    s.receive_bytes(encode_wav_s16(np.zeros(8, np.float32), 16_000))
    with pytest.raises(FrameError) as info:
        s.receive_bytes(encode_wav_s16(np.zeros(8, np.float32), 44_100))
    assert info.value.code == "rate_changed"
    assert info.value.message == (
        "expected audio at the stream's 16000 Hz, got a WAV frame at 44100 Hz "
        "(start a new stream to change rates)"
    )
    bad = bytearray(encode_wav_s16(np.zeros(8, np.float32), 16_000))
    struct.pack_into("<I", bad, 24, 4_000)  # a rate outside 8000..192000
    with pytest.raises(FrameError) as wav:
        MessageOrder(DEFAULT_FORMAT).receive_bytes(bytes(bad))
    assert (wav.value.code, wav.value.close_code) == ("unsupported_format", None)
    assert wav.value.message == "sample_rate: expected 8000..192000 Hz, got 4000"


def test_a_text_frame_is_measured_in_bytes_only_when_it_could_fit() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    with pytest.raises(MessageError) as info:
        s.receive_text("x" * 5000)
    assert info.value.message == (
        "expected a control message of at most 4096 bytes, got at least 5000 bytes"
    )
    assert info.value.code == "message_too_large"


def test_a_wav_frame_gives_its_samples_at_its_rate_and_starts_the_stream() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    started, audio = s.receive_bytes(encode_wav_s16(np.array([0.5, -0.25], np.float32), 22_050))
    assert isinstance(started, Started) and isinstance(audio, Audio)
    assert audio.sample_rate == 22_050
    np.testing.assert_allclose(audio.samples[:, 0], [0.5, -0.25], atol=1e-4)
    assert s.state is OrderState.STREAMING  # audio first started the stream
    [more] = s.receive_bytes(encode_wav_s16(np.zeros(2, np.float32), 22_050))
    assert isinstance(more, Audio)
    assert [type(e).__name__ for e in s.receive_text('{"type": "stop"}')] == ["Stopped"]


@pytest.mark.parametrize(("value", "flag"), [("true", True), ("1", True), ("false", False),
                                             ("0", False)])  # fmt: skip
def test_lossless_in_the_query_is_true_false_1_or_0(value: str, flag: bool) -> None:
    preset = parse_query({"lossless": value}, DEFAULT_FORMAT)
    assert preset is not None and preset.lossless is flag


def test_a_bad_lossless_value_is_shown_in_the_error() -> None:
    with pytest.raises(FormatError) as query:
        parse_query({"lossless": "maybe"}, DEFAULT_FORMAT)
    assert query.value.message == "lossless: expected true or false, got 'maybe'"
    with pytest.raises(FormatError) as start:
        parse_start({"type": "start", "lossless": "yes"}, DEFAULT_FORMAT)
    assert start.value.message == "start: expected lossless to be true or false, got 'yes'"


def test_text_of_exactly_4096_characters_is_measured_in_bytes() -> None:
    with pytest.raises(MessageError) as info:
        MessageOrder(DEFAULT_FORMAT).receive_text("é" * 4096)  # 8192 bytes
    assert info.value.message.endswith("got at least 8192 bytes")
    # longer than the limit in characters already: refused without encoding it, so the
    # message gives the character count as the lower bound it is
    with pytest.raises(MessageError) as long:
        MessageOrder(DEFAULT_FORMAT).receive_text("é" * 5000)
    assert long.value.message.endswith("got at least 5000 bytes")


# ---- last_seq >= -1 ---------------------------------------------------------------------------
def test_last_seq_minus_one_is_accepted_and_minus_two_refused() -> None:
    assert parse_start({"type": "start", "last_seq": -1}, DEFAULT_FORMAT).last_seq == -1
    with pytest.raises(
        FormatError, match=r"^start: expected last_seq to be an integer >= -1, got -2$"
    ):
        parse_start({"type": "start", "last_seq": -2}, DEFAULT_FORMAT)


# ---- text frames: 4096 bytes, counted in UTF-8 -------------------------------------------------
def test_a_start_of_exactly_4096_bytes_in_multibyte_characters_is_parsed() -> None:
    base = json.dumps({"type": "start", "stream_id": ""})
    pad = 4096 - len(base.encode())
    text = json.dumps(
        {"type": "start", "stream_id": "é" * (pad // 2) + "x" * (pad % 2)}, ensure_ascii=False
    )
    assert len(text.encode()) == 4096 and len(text) < 4096
    [started] = MessageOrder(DEFAULT_FORMAT).receive_text(text)
    assert started.stream_id is not None and len(started.stream_id) > 1000  # type: ignore[union-attr]


def _padded(size: int) -> str:
    text = '{"type": "stop"}'
    return text + " " * (size - len(text.encode()))


def test_text_limit_is_in_bytes_inclusive() -> None:
    assert len(_padded(MAX_TEXT_BYTES).encode()) == MAX_TEXT_BYTES
    MessageOrder(DEFAULT_FORMAT).receive_text(_padded(MAX_TEXT_BYTES))
    with pytest.raises(MessageError, match=f"at most {MAX_TEXT_BYTES} bytes") as err:
        MessageOrder(DEFAULT_FORMAT).receive_text(_padded(MAX_TEXT_BYTES + 1))
    assert err.value.code == "message_too_large"


def test_text_limit_counts_multibyte_characters_as_bytes() -> None:
    emoji = "😀" * (MAX_TEXT_BYTES // 4 + 1)  # fewer characters than the limit, more bytes
    assert len(emoji) < MAX_TEXT_BYTES < len(emoji.encode())
    with pytest.raises(MessageError, match="at most 4096 bytes"):
        MessageOrder(DEFAULT_FORMAT).receive_text(json.dumps({"type": emoji}, ensure_ascii=False))


def test_huge_integers_are_refused_with_a_short_message() -> None:
    text = '{"type": "start", "sample_rate": ' + "9" * 4000 + "}"
    assert len(text) <= MAX_TEXT_BYTES
    with pytest.raises(FormatError, match="got <huge int>") as err:
        MessageOrder(DEFAULT_FORMAT).receive_text(text)
    assert len(err.value.message) < 100
    # past Python's 4300-digit parsing limit the size check answers first: never a ValueError
    with pytest.raises(MessageError, match="at most"):
        MessageOrder(DEFAULT_FORMAT).receive_text(
            '{"type": "start", "sample_rate": ' + "9" * 5000 + "}"
        )


def test_wav_frames_that_switch_rate_are_refused_and_the_stream_goes_on() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    first = s.receive_bytes(encode_wav_s16(np.zeros(160, np.float32), 16_000))
    assert [type(e) for e in first] == [Started, Audio]
    with pytest.raises(FrameError, match="stream's 16000 Hz, got a WAV frame at 44100 Hz") as err:
        s.receive_bytes(encode_wav_s16(np.zeros(441, np.float32), 44_100))
    assert err.value.code == "rate_changed"
    [audio] = s.receive_bytes(encode_wav_s16(np.zeros(160, np.float32), 16_000))
    assert isinstance(audio, Audio) and audio.sample_rate == 16_000


def test_raw_pcm_fixes_the_rate_for_later_wav_frames() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    s.receive_bytes(np.zeros(4, "<i2").tobytes())
    with pytest.raises(FrameError, match="got a WAV frame at 48000 Hz"):
        s.receive_bytes(encode_wav_s16(np.zeros(480, np.float32), 48_000))


def test_a_bad_first_frame_leaves_the_stream_waiting_for_its_start() -> None:
    s = MessageOrder(DEFAULT_FORMAT)
    with pytest.raises(FrameError):
        s.receive_bytes(b"\x00")  # odd byte count for s16
    assert s.state is OrderState.AWAITING_START
    events = s.receive_bytes(np.zeros(4, "<i2").tobytes())
    assert [type(e) for e in events] == [Started, Audio]


# ---- the golden client messages (spec/vectors) ---------------------------------------------------
@pytest.mark.parametrize("vector", golden_messages("client"), ids=lambda v: v["name"])
def test_client_messages_are_accepted(vector: dict[str, Any]) -> None:
    events = MessageOrder(DEFAULT_FORMAT).receive_text(json.dumps(vector["message"]))
    kind = vector["message"]["type"]
    assert isinstance(events[-1], Started if kind == "start" else Stopped)


# ---- fuzzed: arbitrary text raises only the documented errors ------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_messages(value: object) -> None:
    for obj in (value, {"type": "start", "sample_rate": value}, {"type": value}):
        with contextlib.suppress(ClientError):
            MessageOrder(DEFAULT_FORMAT).receive_text(json.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ClientError):
        MessageOrder(DEFAULT_FORMAT).receive_text(text)


def test_a_resume_token_turns_acks_on_and_query_keys_parse() -> None:
    started = parse_query({"resume_token": "v1.a.b", "replay_from": "480"}, DEFAULT_FORMAT)
    assert started is not None
    assert (started.resume_token, started.replay_from, started.acks) == ("v1.a.b", 480, True)
    asked = parse_query({"acks": "1"}, DEFAULT_FORMAT)
    assert asked is not None and asked.acks and asked.resume_token is None
