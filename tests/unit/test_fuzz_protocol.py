"""Property tests: arbitrary input raises only the documented errors."""

import contextlib
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from voxlive.errors import ClientError
from voxlive.protocol.frames import DEFAULT_FORMAT, AudioFormat, decode_pcm, decode_wav
from voxlive.protocol.session import Session

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    for fmt in (DEFAULT_FORMAT, AudioFormat(48_000, "pcm_f32le", 2)):
        try:
            out = decode_pcm(data, fmt)
            assert out.dtype == np.float32 and np.all(np.isfinite(out))
        except ClientError:
            pass
    with contextlib.suppress(ClientError):
        Session(DEFAULT_FORMAT).receive_bytes(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_wav_bodies(body: bytes) -> None:
    try:
        samples, rate = decode_wav(b"RIFF\x00\x00\x00\x00WAVE" + body)
        assert np.all(np.isfinite(samples)) and 8000 <= rate <= 192_000
    except ClientError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"fmt ", b"data", b"LIST"]), st.integers(0, 2**32 - 1), st.binary(max_size=64)
)
def test_wav_chunks_with_any_size(chunk: bytes, size: int, body: bytes) -> None:
    header = b"RIFF\x00\x00\x00\x00WAVE" + chunk + size.to_bytes(4, "little")
    with contextlib.suppress(ClientError):
        decode_wav(header + body)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_messages(value: object) -> None:
    for obj in (value, {"type": "start", "sample_rate": value}, {"type": value}):
        with contextlib.suppress(ClientError):
            Session(DEFAULT_FORMAT).receive_text(json.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ClientError):
        Session(DEFAULT_FORMAT).receive_text(text)
