"""Which windows the model sees (pipeline/gate.py): quiet windows gated by RMS at once, and the
VAD gate with speech probabilities given by hand (pure: no model, no thread).

Silero scores 32 ms chunks (512 samples at 16 kHz); a window goes to the model when at least
``vad_min_speech_ms`` (rounded up to whole chunks) of the chunks it overlaps are speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.stream import Stream

CHUNK = 512
RATE = 16_000
# window = 8 chunks, hop = 4 chunks, the ring holds 32 chunks; speech needs 2 chunks
CFG = StreamConfig(sample_rate=RATE, window_ms=256, hop_ms=128, buffer_ms=1024,
                   labels=("a", "b"), gate="vad", vad_min_speech_ms=64, smoothing=1)  # fmt: skip


def _stream(**changes: object) -> Stream:
    return Stream("s", dataclasses.replace(CFG, **changes))  # type: ignore[arg-type]


def _zeros(samples: int) -> np.ndarray:
    return np.zeros(samples, np.float32)


def _answer(s: Stream, probs: list[float] | np.ndarray) -> None:
    """Play the VAD runner: take the stream's job and answer it with ``probs``, one per chunk."""
    job = s.vad_job()
    assert job is not None
    assert len(job[1]) == len(probs) * CHUNK
    s.vad_done(np.asarray(probs, np.float32))


def _speech_at(chunks: int, *speech: int) -> list[float]:
    return [0.9 if i in speech else 0.1 for i in range(chunks)]


def _sent_to_model(s: Stream) -> list[int]:
    """Answer every window waiting for the model, then pop the results: the start (in samples)
    of each window the gate sent to the model."""
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.5, 0.5]))
    return [m["start_ms"] * RATE // 1000 for m in s.pop_messages() if not m["gated"]]


def test_a_window_is_decided_once_its_whole_chunks_are_seen_without_waiting_for_more_audio() -> (
    None
):
    """250 ms = 7 whole chunks and 416 samples. The VAD saw the 7 chunks; the audio that
    completes the window adds no whole chunk, so there is no job, but the window must not wait
    for the next chunk (nor forever, if the client pauses)."""
    s = _stream(window_ms=250, hop_ms=250)
    s.push(_zeros(7 * CHUNK))
    _answer(s, [0.9] * 7)
    s.push(_zeros(4000 - 7 * CHUNK))  # the window is cut now
    assert s.vad_job() is None  # nothing new for the VAD…
    assert s.gating == 0 and s.pending == 1  # …and the window is decided


@pytest.mark.parametrize(
    ("min_speech_ms", "window_ms", "need"),
    [
        (64, 256, 2),  # 1024 samples: exactly 2 chunks
        (10, 256, 1),  # 160 samples: rounded up to one chunk
        (1025, 1100, 33),  # 16400 samples: 32 chunks and 16 samples, so 33
    ],
)
def test_speech_must_cover_the_minimum_rounded_up_to_whole_chunks(
    min_speech_ms: int, window_ms: int, need: int
) -> None:
    chunks = -(-RATE * window_ms // 1000 // CHUNK)  # chunks the window overlaps
    for speech, to_model in ((need - 1, False), (need, True)):
        s = _stream(window_ms=window_ms, hop_ms=window_ms, buffer_ms=2 * window_ms,
                    vad_min_speech_ms=min_speech_ms)  # fmt: skip
        s.push(_zeros(chunks * CHUNK))
        _answer(s, [0.9] * speech + [0.1] * (chunks - speech))
        assert (s.pending, s.gating) == ((1, 0) if to_model else (0, 0)), (speech, need)


def test_a_probability_equal_to_the_threshold_is_speech() -> None:
    s = _stream(vad_threshold=0.5)
    s.push(_zeros(8 * CHUNK))
    _answer(s, [0.5, 0.5] + [0.49] * 6)
    assert s.pending == 1


def test_nothing_to_do_until_a_whole_chunk_is_new() -> None:
    s = _stream()
    s.push(_zeros(8 * CHUNK + 100))
    _answer(s, [0.1] * 8)
    assert s.vad_job() is None  # 100 samples: no whole chunk yet
    s.push(_zeros(CHUNK - 100))
    _answer(s, [0.1])  # exactly one new chunk is a job


def test_when_the_vad_fails_its_windows_go_to_the_model_and_it_starts_afresh() -> None:
    s = _stream()
    s.push(_zeros(8 * CHUNK))
    _answer(s, [0.1] * 8)  # window 0 (chunks 0-7): ambient
    s.push(_zeros(4 * CHUNK))  # window 1: chunks 4-11
    job = s.vad_job()
    assert job is not None and len(job[1]) == 4 * CHUNK
    state = job[0]
    state.state[:] = 1.0  # what a real VAD leaves behind
    s.vad_done(None)  # the VAD failed: window 1 counts as speech
    assert s.gating == 0 and _sent_to_model(s) == [4 * CHUNK]
    s.push(_zeros(4 * CHUNK))  # window 2: chunks 8-15
    job = s.vad_job()
    assert job is not None and len(job[1]) == 4 * CHUNK  # just the new audio
    assert not job[0].state.any()  # the failed run's state is not carried on


def test_the_vad_keeps_its_state_while_it_keeps_up_and_starts_afresh_behind_the_ring() -> None:
    s = _stream(buffer_ms=1000)  # 16000 samples: 31.25 chunks
    s.push(_zeros(31 * CHUNK))
    job = s.vad_job()
    assert job is not None
    job[0].state[:] = 1.0
    s.vad_done(np.zeros(31, np.float32))
    s.push(_zeros(16_000))  # the ring now starts exactly where the VAD stopped: still in time
    job = s.vad_job()
    assert job is not None and job[0].state.all() and len(job[1]) == 31 * CHUNK
    s.vad_done(np.zeros(31, np.float32))
    s.push(_zeros(16_000 + 1))  # one sample more than the ring holds past the VAD: behind
    job = s.vad_job()
    assert job is not None and not job[0].state.any()


def test_a_window_starting_in_the_rings_oldest_chunk_counts_that_chunk() -> None:
    """hop 100 ms: windows start inside chunks. The VAD answers late, after the ring moved on:
    its oldest sample is inside chunk 21, where window 7 (11200 = chunk 21 + 448) starts; the
    chunk's speech still counts for the window."""
    s = _stream(hop_ms=100, buffer_ms=1000)
    s.push(_zeros(31 * CHUNK))
    job = s.vad_job()
    assert job is not None
    s.push(_zeros(11_000))  # the ring's oldest sample is now 10872 (chunk 21)
    s.vad_done(np.asarray(_speech_at(31, 21, 25), np.float32))
    # window 7 covers chunks 21-29: two speech chunks; the windows after it see one or none
    assert _sent_to_model(s) == [11_200]


def test_after_falling_behind_the_ring_the_vad_resumes_on_the_right_chunks() -> None:
    """The VAD answered chunks 0-30 late; meanwhile the ring moved past them (its oldest sample
    is 17500, inside chunk 34). The VAD resumes at chunk 35; chunk 34, never seen, is not
    speech. Window 11 (start 17600, chunks 34-42) and window 12 (19200, chunks 37-45) follow."""
    s = _stream(hop_ms=100, buffer_ms=1000)
    s.push(_zeros(31 * CHUNK))
    job = s.vad_job()
    assert job is not None
    s.push(_zeros(33_500 - 31 * CHUNK))
    s.vad_done(np.zeros(31, np.float32))
    assert s.stats.dropped_windows > 0
    probs = _speech_at(65, 38, 44)[35:]  # chunks 35-64
    _answer(s, probs)
    # speech in chunks 38 and 44: only window 12 has both (window 11 has one, and chunk 34)
    assert _sent_to_model(s) == [19_200]


def test_speech_late_in_a_long_stream_is_found() -> None:
    """Ten seconds in steps of 5 chunks, a second of speech then a second of silence: long after
    the ring first wrapped, the windows inside speech go to the model and the others do not."""
    s = _stream()
    speech = [(i * CHUNK // RATE) % 2 == 0 for i in range(320)]  # chunk i: speech or not
    sent: set[int] = set()
    for begin in range(0, 320, 5):
        s.push(_zeros(5 * CHUNK))
        _answer(s, [0.9 if speech[i] else 0.1 for i in range(begin, begin + 5)])
        sent.update(_sent_to_model(s))
    for index in range(79):  # window i: chunks 4i to 4i+7
        count = sum(speech[4 * index : 4 * index + 8])
        if count >= 2:
            assert 4 * index * CHUNK in sent, index
        elif count == 0:
            assert 4 * index * CHUNK not in sent, index


# ---- a window waits for the VAD, then is decided once --------------------------------------------
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


# ---- the RMS gate ------------------------------------------------------------------------------
def test_quiet_windows_are_gated_without_the_model() -> None:
    s = Stream("s", StreamConfig(sample_rate=1000, window_ms=100, hop_ms=50, buffer_ms=300,
                                 labels=("a", "b"), gate_rms=0.01, smoothing=1))  # fmt: skip
    s.push(np.zeros(100, np.float32))
    assert s.pending == 0
    [m] = s.pop_messages()
    assert m["label"] == "ambient" and m["gated"] is True and m["scores"] == {}
