"""Resume tokens: what is signed verifies to itself, and anything else raises only TokenError."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxlive.protocol.frames import AudioFormat
from voxlive.protocol.resume_token import (
    MAX_TOKEN_CHARS,
    Checkpoint,
    OpenSegment,
    ResumeToken,
    TokenError,
    sign,
    verify,
)

SECRET = b"a-secret-the-fronts-share"
NOW_MS = 1_800_000_000_000


def token(**changes: object) -> ResumeToken:
    cp = Checkpoint(
        position=48_000, input_offset=144_000, next_seq=5, windows=6, classified=3, gated=1,
        failed=0, dropped_windows=1, unsent_dropped=1, recent=("male", "ambient"),
        smoothed="male", segment=OpenSegment("male", 1000.0, 3000.0, 2.5, 3),
    )  # fmt: skip
    base = ResumeToken(
        stream_id="abc123", format=AudioFormat(48_000, "pcm_f32le", 2), input_rate=48_000,
        lossless=False, grid=(16_000, 16_000, 8_000), checkpoint=cp,
        expires_ms=NOW_MS + 10_000, nonce="0" * 32,
    )  # fmt: skip
    return ResumeToken(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


def test_a_signed_token_verifies_to_itself_and_is_compact() -> None:
    text = sign(token(), SECRET)
    assert verify(text, SECRET, NOW_MS) == token()
    assert len(text) < 600 and text.startswith("v1.")


def test_another_secret_or_a_changed_payload_is_forged() -> None:
    text = sign(token(), SECRET)
    with pytest.raises(TokenError) as info:
        verify(text, b"another-secret-entirely", NOW_MS)
    assert info.value.reason == "forged" and info.value.code == "resume_failed"
    version, payload, mac = text.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["at"][2] = 0  # rewind seq: the client would get its results again
    raw = json.dumps(body, separators=(",", ":")).encode()
    tampered = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature") as info:
        verify(f"{version}.{tampered}.{mac}", SECRET, NOW_MS)
    assert info.value.reason == "forged"


def test_an_expired_token_says_how_long_ago() -> None:
    text = sign(token(expires_ms=NOW_MS - 2_500), SECRET)
    with pytest.raises(TokenError, match=r"expired 2\.5 s ago") as info:
        verify(text, SECRET, NOW_MS)
    assert info.value.reason == "expired"
    with pytest.raises(TokenError):
        verify(sign(token(expires_ms=NOW_MS), SECRET), SECRET, NOW_MS)  # the expiry is exclusive


@pytest.mark.parametrize(
    "text",
    ["", "v1", "v1.a", "v2.a.b", "v1.a.b.c", "v1.é.b", 7, None, "v1." + "a" * MAX_TOKEN_CHARS],
)
def test_malformed_tokens_are_refused_before_any_decoding(text: object) -> None:
    with pytest.raises(TokenError) as info:
        verify(text, SECRET, NOW_MS)
    assert info.value.reason in ("malformed", "forged")


def test_a_signed_payload_of_the_wrong_shape_is_malformed_not_a_crash() -> None:
    for body in (b"[]", b"{}", b'{"id": 5}', b"\xff", b'{"fmt": [1, 2, 3, 4, 5]}'):
        payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        mac = hmac.new(SECRET, f"v1.{payload}".encode(), hashlib.sha256).digest()
        text = f"v1.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        with pytest.raises(TokenError) as info:
            verify(text, SECRET, NOW_MS)
        assert info.value.reason == "malformed"


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_raises_only_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        verify(text, SECRET, NOW_MS)


@given(
    position=st.integers(0, 2**40), seq=st.integers(0, 2**31), rate=st.sampled_from([8000, 44100]),
    recent=st.lists(st.sampled_from(["male", "female", "ambient"]), max_size=8),
    flip=st.integers(0, 10_000),
)  # fmt: skip
def test_round_trip_and_any_flipped_character_is_refused(
    position: int, seq: int, rate: int, recent: list[str], flip: int
) -> None:
    cp = Checkpoint(position, position * rate // 16_000, seq, recent=tuple(recent))
    original = token(checkpoint=cp, input_rate=rate, format=AudioFormat(rate))
    text = sign(original, SECRET)
    assert verify(text, SECRET, NOW_MS) == original
    at = flip % len(text)
    swapped = "A" if text[at] != "A" else "B"
    changed = text[:at] + swapped + text[at + 1 :]
    with contextlib.suppress(TokenError):
        assert verify(changed, SECRET, NOW_MS) == original  # base64's unused tail bits, at most
