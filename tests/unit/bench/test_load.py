"""The load's pure parts (bench/load.py): the audio fresh windows cover, however they overlap,
the figures a run reports from it (bench/run.py ``fresh_figures``), and the client address
each stream names behind a proxy."""

from __future__ import annotations

import pytest

from voxlive.bench.load import ClientCounts, LoadSpec, client_address, covered_ms
from voxlive.bench.run import fresh_figures


def test_overlapping_windows_cover_their_union_within_the_counted_time() -> None:
    # hop 500, window 1000: 0-1000 and 500-1500 overlap, so 1500 ms
    assert covered_ms([(500, 1500), (0, 1000)], 0, 10_000) == 1500
    # paced to 2000: each window covers half of its hop
    assert covered_ms([(0, 1000), (2000, 3000), (4000, 5000)], 0, 6000) == 3000
    # clipped to the counted time, and a window inside another adds nothing
    assert covered_ms([(1500, 2500), (1600, 1700), (9500, 10_500)], 2000, 10_000) == 1000
    assert covered_ms([], 0, 1000) == 0


def test_a_run_reports_fresh_results_per_second_and_the_share_of_audio_they_cover() -> None:
    spec = LoadSpec(url="ws://x/audio", streams=2, seconds=12.0, warmup_s=2.0)
    a = ClientCounts(fresh=20, sent_s=12.0, fresh_spans=[(2000 + 500 * i, 3000 + 500 * i)
                                                         for i in range(19)])  # fmt: skip
    b = ClientCounts(fresh=5, sent_s=12.0, fresh_spans=[(2000 + 2000 * i, 3000 + 2000 * i)
                                                        for i in range(5)])  # fmt: skip
    per_s, share = fresh_figures(spec, [a, b])
    assert per_s == pytest.approx(25 / 10)
    assert share == pytest.approx((10_000 + 5_000) / 20_000)
    assert fresh_figures(spec, [ClientCounts()]) == (0.0, None)  # a stream that sent nothing


def test_each_stream_names_its_own_client_address() -> None:
    assert [client_address(i) for i in (0, 1, 254, 255, 65_535)] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.255", "10.0.1.0", "10.1.0.0",
    ]  # fmt: skip
    assert len({client_address(i) for i in range(10_000)}) == 10_000
