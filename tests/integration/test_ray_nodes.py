"""The Ray engine on a two-node Ray cluster on this host (``ray.cluster_utils.Cluster``: a head
and a worker node, one CPU each, so Serve puts one replica on each): killing the node that holds
a replica mid-stream costs no result. The call in flight on the dead node is sent once more and
the other replica answers it; nothing is returned as an error.

Its own module: it starts its own Ray cluster (no other Ray test may run beside it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import MS, load, running_server, stream_audio

pytestmark = pytest.mark.ray


@pytest.fixture
def two_nodes() -> Iterator[Any]:
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


async def test_killing_a_replicas_node_mid_stream_costs_no_result(
    two_nodes: Any, tiny_model_dir: Path
) -> None:
    cluster, worker = two_nodes
    female, rate = load("female_speech.wav")
    audio = np.concatenate([female] * 3)  # about 14 s
    settings = dict(
        model=str(tiny_model_dir), backend="torch", gate="none", engine="ray",
        ray_address=cluster.address, ray_min_replicas=2, ray_max_replicas=2,
        ray_cpus_per_replica=1.0, buffer_ms=30_000, max_lag_ms=0,
    )  # fmt: skip
    async with running_server(**settings) as srv:
        clf = srv.service.classifier
        nodes: set[str] = set()

        async def seen_both() -> bool:
            nodes.add((await asyncio.to_thread(clf.replica_stats))["node"])
            return len(nodes) == 2

        for _ in range(50):  # Serve routes each call to either replica
            if await seen_both():
                break
        assert worker.node_id in nodes and len(nodes) == 2  # a replica on each node

        async def kill_soon() -> None:
            await asyncio.sleep(3_000 * MS)
            await asyncio.to_thread(cluster.remove_node, worker, False)  # not gracefully

        killer = asyncio.create_task(kill_soon())
        start = {"type": "start", "sample_rate": rate, "lossless": True}
        run = await stream_audio(srv.ws_url, audio, rate, speed=2, start=start)
        await killer
    [end] = run.of("end")
    assert run.of("error") == [] and end["failed"] == 0  # no window failed
    assert end["dropped_windows"] == 0 and len(run.results) == end["windows"]
    late = [r for r in run.results if r["start_ms"] > 3_000 * 2 + 1_000]
    assert late  # classified after the node was gone, by the replica left
    print(f"\nretries after the node's death: {clf.retries}")
