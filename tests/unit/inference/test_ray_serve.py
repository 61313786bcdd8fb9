"""The Ray engine's front-side classifier without a cluster: one request per batch, one retry
when the replica dies mid-call, the hop measured apart from the replica's model call."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pytest

from voxlive.inference.ray_serve import RayClassifier
from voxlive.settings import Settings

exceptions = pytest.importorskip("ray.exceptions")


class Response:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def result(self, timeout_s: float) -> Any:
        assert timeout_s > 0
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class Handle:
    """A DeploymentHandle whose ``classify`` answers with ``outcomes`` in turn."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[np.ndarray] = []
        self.classify = self

    def remote(self, batch: np.ndarray) -> Response:
        self.sent.append(batch)
        return Response(self.outcomes.pop(0))


def front(handle: Handle) -> RayClassifier:
    clf = RayClassifier.__new__(RayClassifier)  # no cluster: only what predict uses
    clf.settings, clf.handle = Settings(inference_timeout_ms=5_000), handle
    clf.hops, clf.retries = deque(), 0
    return clf


def test_a_batch_is_one_request_of_float32_and_the_hop_leaves_out_the_model_call() -> None:
    probs = np.array([[0.1, 0.9], [0.8, 0.2]], np.float64)
    handle = Handle((probs, 0.0))
    clf = front(handle)
    out = clf.predict(np.zeros((2, 16), np.float64))
    [sent] = handle.sent
    assert sent.shape == (2, 16) and sent.dtype == np.float32 and sent.flags.c_contiguous
    assert out.dtype == np.float32 and np.allclose(out, probs)
    assert len(clf.hops) == 1 and 0 <= clf.hops[0] < 1.0 and clf.retries == 0


def test_a_replica_dying_mid_call_costs_one_retry() -> None:
    probs = np.array([[0.5, 0.5]], np.float32)
    handle = Handle(exceptions.ActorDiedError(), (probs, 0.0))
    clf = front(handle)
    assert np.allclose(clf.predict(np.zeros((1, 16), np.float32)), probs)
    assert len(handle.sent) == 2 and clf.retries == 1


def test_a_second_failure_or_another_error_fails_the_call() -> None:
    died = Handle(exceptions.ActorDiedError(), exceptions.ActorDiedError())
    with pytest.raises(exceptions.ActorDiedError):
        front(died).predict(np.zeros((1, 16), np.float32))
    assert len(died.sent) == 2
    slow = Handle(TimeoutError("timed out"))  # a slow replica is not retried: it is late
    with pytest.raises(TimeoutError):
        front(slow).predict(np.zeros((1, 16), np.float32))
    assert len(slow.sent) == 1
