"""The Ray Serve engine on a local Ray instance bound to loopback with 2 CPUs.

Marked ``ray`` (CI runs them; ``-m "not ray"`` skips them locally). One deployment (the tiny
random wav2vec2, loaded by path in the replica) serves every test of this module.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import MS, eventually, load, running_server, stream_audio

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)  # fmt: skip
    try:
        yield
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def _settings(model: Path, **changes: Any) -> dict[str, Any]:
    # Every window kept (a 30 s buffer, no shedding), so results can be compared one by one and
    # a replica's replacement costs only the windows in flight.
    return dict(model=str(model), backend="torch", gate="none", max_batch=8, max_wait_ms=20,
                buffer_ms=30_000, max_lag_ms=0, **changes)  # fmt: skip


def _cluster_footprint() -> tuple[list[Any], dict[str, float]]:
    """The cluster's named actors (Serve's replicas and controller among them) and its free
    resources: a per-stream actor or reservation would change one of them. The object store's
    free bytes are left out: they move with objects Ray itself frees lazily."""
    import ray

    named = sorted(str(a) for a in ray.util.list_named_actors(all_namespaces=True))
    free = {k: v for k, v in ray.available_resources().items() if k != "object_store_memory"}
    return named, free


def _rows(run: Any) -> list[tuple[float, str, list[float]]]:
    return [(r["start_ms"], r["label"], [r["scores"][k] for k in sorted(r["scores"])])
            for r in run.results]  # fmt: skip


async def test_ray_and_in_process_engines_give_the_same_results(
    ray_cluster: None, tiny_model_dir: Path
) -> None:
    female, rate = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    runs: dict[str, list[Any]] = {}
    for engine in ("local", "ray"):
        async with running_server(**_settings(tiny_model_dir, engine=engine)) as srv:
            runs[engine] = list(await asyncio.gather(
                stream_audio(srv.ws_url, female, rate, speed=0),
                stream_audio(srv.ws_url, male, rate, speed=0),
            ))  # fmt: skip
            if engine == "ray":
                assert srv.service.classifier.info.backend == "ray:transformers"
    for local, ray in zip(runs["local"], runs["ray"], strict=True):
        a, b = _rows(local), _rows(ray)
        assert len(a) == len(b) >= 8
        for (start_a, label_a, scores_a), (start_b, label_b, scores_b) in zip(a, b, strict=True):
            assert start_a == start_b and label_a == label_b
            np.testing.assert_allclose(scores_a, scores_b, atol=1e-4)


async def test_concurrent_streams_share_batches_and_leave_nothing_behind(
    ray_cluster: None, tiny_model_dir: Path
) -> None:
    female, rate = load("female_speech.wav")
    async with running_server(**_settings(tiny_model_dir, engine="ray")) as srv:
        clf = srv.service.classifier
        seen = len((await asyncio.to_thread(clf.replica_stats))["batch_sizes"])
        before = await asyncio.to_thread(_cluster_footprint)
        runs = await asyncio.gather(
            *(stream_audio(srv.ws_url, female, rate, speed=4) for _ in range(4))
        )
        sizes = (await asyncio.to_thread(clf.replica_stats))["batch_sizes"][seen:]
        assert clf.parallel_calls() == 1  # one replica: the gauge counts one call at a time
        assert all(r.of("end")[0]["failed"] == 0 for r in runs)
        assert sum(sizes) == sum(len(r.results) for r in runs)
        assert max(sizes) >= 2  # the front batched windows of different streams: one request
        # Streams are the front's alone: the cluster has no more actors than before.
        await eventually(lambda: not srv.service.batcher._streams, "every stream released")
        after = await asyncio.to_thread(_cluster_footprint)
        assert after == before


async def test_a_killed_replica_is_replaced_and_the_stream_goes_on(
    ray_cluster: None, tiny_model_dir: Path
) -> None:
    female, rate = load("female_speech.wav")
    audio = np.concatenate([female] * 4)  # about 19 s
    async with running_server(**_settings(tiny_model_dir, engine="ray")) as srv:
        clf = srv.service.classifier
        pid = (await asyncio.to_thread(clf.replica_stats))["pid"]

        async def kill_soon() -> None:
            await asyncio.sleep(4_000 * MS)
            os.kill(pid, signal.SIGKILL)

        killer = asyncio.create_task(kill_soon())
        # lossless: while Serve replaces the replica, windows wait instead of being shed
        start = {"type": "start", "sample_rate": rate, "lossless": True}
        run = await stream_audio(srv.ws_url, audio, rate, speed=2, start=start)
        await killer
        new_pid = (await asyncio.to_thread(clf.replica_stats))["pid"]
    assert new_pid != pid  # Serve started a replacement
    [end] = run.of("end")
    # The call in flight at the kill was sent again, and Serve held it until the replacement
    # was up: no window failed.
    assert run.of("error") == [] and end["failed"] == 0
    assert end["dropped_windows"] == 0
    after_kill = [r for r in run.results if r["start_ms"] > 4000 * 2 + 2000]
    assert len(after_kill) >= 10  # classified again after the replacement came up


async def test_two_fronts_share_one_deployment(ray_cluster: None, tiny_model_dir: Path) -> None:
    """A second front attaches to the running application instead of deploying its own; the
    replica serves the batches of both."""
    female, rate = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    settings = _settings(tiny_model_dir, engine="ray")
    async with running_server(**settings) as a, running_server(**settings) as b:
        stats_a = await asyncio.to_thread(a.service.classifier.replica_stats)
        stats_b = await asyncio.to_thread(b.service.classifier.replica_stats)
        assert stats_a["pid"] == stats_b["pid"]  # one replica serves both fronts
        seen = len(stats_a["batch_sizes"])
        run_a, run_b = await asyncio.gather(
            stream_audio(a.ws_url, female, rate, speed=4),
            stream_audio(b.ws_url, male, rate, speed=4),
        )
        sizes = (await asyncio.to_thread(a.service.classifier.replica_stats))["batch_sizes"]
    assert sum(sizes[seen:]) == len(run_a.results) + len(run_b.results)
    assert run_a.of("end")[0]["failed"] == run_b.of("end")[0]["failed"] == 0


async def test_a_replica_killed_mid_call_costs_a_retry_on_the_other_not_an_error(
    ray_cluster: None, tiny_model_dir: Path
) -> None:
    """Two replicas (one CPU each), a flat-out stream keeping both busy: killing one fails no
    window; its call goes to the other (or waits for the replacement). Last in the module: it
    deploys its own application."""
    from ray import serve

    from voxlive.inference.ray_serve import APP_NAME

    serve.delete(APP_NAME)  # the one-replica application of the tests above
    female, rate = load("female_speech.wav")
    audio = np.concatenate([female] * 4)
    # small batches, so that calls follow each other closely and the kill lands in one
    settings = _settings(tiny_model_dir, engine="ray", ray_min_replicas=2, ray_max_replicas=2)
    settings["max_batch"] = 2
    try:
        async with running_server(**settings) as srv:
            clf = srv.service.classifier
            pids: set[int] = set()
            for _ in range(50):  # the router spreads calls; ask until both have answered
                pids.add((await asyncio.to_thread(clf.replica_stats))["pid"])
                if len(pids) == 2:
                    break
            assert len(pids) == 2
            victim = min(pids)
            # the gauge counts both replicas: each runs its own call
            await eventually(lambda: clf.parallel_calls() == 2, "two replicas counted")

            seen = len(clf.hops)

            async def kill_soon() -> None:
                await eventually(lambda: len(clf.hops) >= seen + 4, "calls", 60_000 * MS)
                os.kill(victim, signal.SIGKILL)

            killer = asyncio.create_task(kill_soon())
            start = {"type": "start", "sample_rate": rate, "lossless": True}
            run = await stream_audio(srv.ws_url, audio, rate, speed=0, start=start)
            await killer
    finally:
        serve.delete(APP_NAME)
    [end] = run.of("end")
    assert run.of("error") == [] and end["failed"] == 0 and end["dropped_windows"] == 0
    assert len(run.results) >= 30
