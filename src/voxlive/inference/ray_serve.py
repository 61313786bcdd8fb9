"""The Ray Serve engine: the model runs as a Ray Serve deployment, possibly on other machines.

The WebSocket front (any number of ``voxlive serve --engine ray`` processes) keeps everything per
stream — buffers, gates, smoothing, ordering — and sends each window to the deployment through a
:class:`DeploymentHandle` as one request. Each replica loads the same classifier the in-process
engine would (:func:`voxlive.inference.loader.load_local`, so results are the same) and
batches the requests of all streams and fronts with ``@serve.batch`` (``max_batch`` /
``max_wait_ms``). The cluster holds no per-stream state: a window is a stateless request, so a
stream that ends leaves nothing behind, and a replica that dies costs only its windows in flight
(they come back as errors) while Serve starts a replacement.

Only the front imports this module's :class:`RayClassifier`; replicas run :class:`ModelReplica`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import deque
from typing import Any

import numpy as np

from voxlive.errors import ModelLoadError
from voxlive.inference.base import ModelInfo
from voxlive.inference.loader import load_local
from voxlive.settings import Settings

log = logging.getLogger(__name__)

APP_NAME = "voxlive"


class ModelReplica:
    """One replica: a loaded classifier behind ``@serve.batch``. Wrapped by
    :func:`deployment` (the decorators are applied there so importing this module needs no
    Ray)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        # The replica runs the model in-process (engine "local"), exactly as a plain server would.
        self.settings = Settings(**{**settings, "engine": "local"})
        self.classifier = load_local(self.settings)
        window = self.classifier.info.sample_rate * self.settings.window_ms // 1000
        self.classifier.warmup(window)
        self.batch_sizes: deque[int] = deque(maxlen=10_000)

    def info(self) -> dict[str, Any]:
        return dataclasses.asdict(self.classifier.info)

    def stats(self) -> dict[str, Any]:
        """Batch sizes seen (most recent 10 000) and the replica's process id."""
        return {"batch_sizes": list(self.batch_sizes), "pid": os.getpid()}

    async def classify(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """A batch of single windows (from any streams and fronts) → one probability row each.
        Windows of equal length share one model call (a stream's last window may be shorter)."""
        self.batch_sizes.append(len(windows))
        out: list[np.ndarray | None] = [None] * len(windows)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_length.setdefault(len(w), []).append(i)
        for rows in by_length.values():
            batch = np.stack([windows[i] for i in rows]).astype(np.float32, copy=False)
            probs = await asyncio.to_thread(self.classifier.predict, batch)
            for i, p in zip(rows, probs, strict=True):
                out[i] = p
        return [p for p in out if p is not None]

    def check_health(self) -> None:
        """Serve's health check: the replica answers, so it is healthy."""


def deployment(settings: Settings) -> Any:
    """The Serve deployment for these settings, with batching, autoscaling and resources."""
    from ray import serve

    s = settings
    batched = serve.batch(max_batch_size=s.max_batch, batch_wait_timeout_s=s.max_wait_ms / 1000)
    replica = type("ModelReplica", (ModelReplica,), {"classify": batched(ModelReplica.classify)})
    resources: dict[str, Any] = {"num_cpus": s.ray_cpus_per_replica}
    if s.ray_gpus_per_replica:
        resources["num_gpus"] = s.ray_gpus_per_replica
    return serve.deployment(
        replica,
        name="VoxliveModel",
        ray_actor_options=resources,
        # Enough requests in flight per replica to fill a batch, and then some.
        max_ongoing_requests=max(2 * s.max_batch, int(s.ray_target_ongoing_requests) + 1),
        autoscaling_config={
            "min_replicas": s.ray_min_replicas,
            "max_replicas": s.ray_max_replicas,
            "target_ongoing_requests": s.ray_target_ongoing_requests,
        },
        health_check_period_s=2,
        health_check_timeout_s=30,
    )


def _token_auth_if_available() -> None:
    """Clusters made with ``ray start`` (Ray >= 2.5x) require a token, while a connecting
    driver defaults to no authentication: send the token when one is at hand (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) unless ``RAY_AUTH_MODE`` says otherwise."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        log.info("Ray token authentication on (token found; RAY_AUTH_MODE=disabled to opt out)")
        os.environ["RAY_AUTH_MODE"] = "token"


class RayClassifier:
    """The front's :class:`~voxlive.inference.base.Classifier`: every window of a batch is one
    request to the deployment; their answers come back in order."""

    def __init__(self, settings: Settings) -> None:
        if settings.ray_address:
            _token_auth_if_available()  # before Ray is imported: it reads the mode then
        import ray
        from ray import serve

        self.settings = settings
        self._started_ray = False
        if not ray.is_initialized():
            address = settings.ray_address or None
            log.info("joining Ray at %s", address or "a new local instance")
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
            self._started_ray = address is None
        self.handle = self._attach_or_deploy(serve)
        try:
            info = self.handle.info.remote().result(timeout_s=600)
        except Exception as exc:
            raise ModelLoadError(f"the Ray Serve deployment did not start: {exc}") from exc
        self._info = ModelInfo(
            **{**info, "labels": tuple(info["labels"]), "backend": f"ray:{info['backend']}"}
        )

    def _attach_or_deploy(self, serve: Any) -> Any:
        """Use the cluster's running voxlive application (another front deployed it), else
        deploy one with these settings."""
        try:
            status = serve.status().applications.get(APP_NAME)
        except Exception:
            status = None
        if status is not None and str(status.status).endswith("RUNNING"):
            log.info("attaching to the running Ray Serve application %r", APP_NAME)
            return serve.get_app_handle(APP_NAME)
        log.info("deploying %r on Ray Serve", APP_NAME)
        serve.start(proxy_location="Disabled")  # voxlive's own server is the front; no HTTP proxy
        app = deployment(self.settings).bind(dataclasses.asdict(self.settings))
        return serve.run(app, name=APP_NAME, route_prefix=None)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, batch: np.ndarray) -> np.ndarray:
        responses = [self.handle.classify.remote(np.ascontiguousarray(w)) for w in batch]
        timeout = self.settings.inference_timeout_ms / 1000
        deadline = time.monotonic() + timeout
        rows = [r.result(timeout_s=max(deadline - time.monotonic(), 0.001)) for r in responses]
        return np.stack(rows).astype(np.float32)

    def warmup(self, window_samples: int) -> None:
        self.predict(np.zeros((2, window_samples), np.float32))

    def replica_stats(self) -> dict[str, Any]:
        """One replica's batch sizes and process id (whichever replica answers)."""
        stats: dict[str, Any] = self.handle.stats.remote().result(timeout_s=30)
        return stats

    def close(self) -> None:
        """Leave the cluster; a local Ray instance this front started is shut down with its
        deployment. On a shared cluster the deployment stays for the other fronts."""
        import ray
        from ray import serve

        if self._started_ray:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
