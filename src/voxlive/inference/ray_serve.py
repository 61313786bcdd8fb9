"""The Ray Serve engine: the model runs as a Ray Serve deployment, possibly on other machines.

The WebSocket front (any number of ``voxlive serve --engine ray`` processes) keeps everything per
stream — buffers, gates, smoothing, ordering — and batches windows with the same deadline-aware
:class:`~voxlive.pipeline.batcher.Batcher` as the in-process engine (``max_batch``, ``max_wait_ms``,
cost model, shedding). Each batch goes to the deployment through a :class:`DeploymentHandle` as
*one* request (a float32 array: Ray hands arrays of more than 100 KiB to the replica through its
object store without a copy), and the replica runs it at once: no second batching there, so the
front's cost model, shedding plan and capacity gauge learn from the measured round trip, a slow
replica included; the gauge multiplies one call's rate by the replicas running (asked of Serve every
:data:`REPLICAS_REFRESH_S`). Each replica loads the same classifier the in-process engine would
(:func:`voxlive.inference.loader.load_local`, so results are the same). Replica choice and
back-pressure are Serve's: a replica takes at most :data:`MAX_ONGOING` batches (one running, one
waiting on the replica), the handle's router holds the rest and sends each to the least busy
replica. The cluster holds no per-stream state: a batch is a stateless request, so a stream that
ends leaves nothing behind. A replica that dies mid-call costs one retry, which Serve routes to a
live replica (or, with none left, to the replacement it starts); a second failure fails that batch's
windows.

Only the front imports this module's :class:`RayClassifier`; replicas run :class:`ModelReplica`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
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
DEPLOYMENT_NAME = "VoxliveModel"
# How often the front asks Serve how many replicas run (the capacity gauge counts them).
REPLICAS_REFRESH_S = 5.0
# Batches a replica accepts at once: one runs, the next waits on the replica (already sent, so
# the replica starts it without a hop); Serve's router holds any more until a replica frees.
MAX_ONGOING = 2


class ModelReplica:
    """One replica: a loaded classifier that runs each batch it is sent, one at a time. Wrapped
    by :func:`deployment` (the decorator is applied there so importing this module needs no
    Ray)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        # The replica runs the model in-process (engine "local"), exactly as a plain server would.
        self.settings = Settings(**{**settings, "engine": "local"})
        self.classifier = load_local(self.settings)
        window = self.classifier.info.sample_rate * self.settings.window_ms // 1000
        self.classifier.warmup(window)
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self._one_at_a_time = asyncio.Lock()  # two calls at once would share the cores

    def info(self) -> dict[str, Any]:
        return dataclasses.asdict(self.classifier.info)

    def stats(self) -> dict[str, Any]:
        """Batch sizes seen (most recent 10 000), the replica's process id and its Ray node."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {"batch_sizes": list(self.batch_sizes), "pid": os.getpid(), "node": node}

    async def classify(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        """A batch of equal-length windows (windows, samples) → (one probability row per window,
        the seconds the model call took on this replica, waiting for the model not counted).
        The model runs on a worker thread so the replica still answers health checks."""
        async with self._one_at_a_time:
            self.batch_sizes.append(len(batch))
            started = time.perf_counter()
            probs = await asyncio.to_thread(self.classifier.predict, batch)
            return np.asarray(probs, np.float32), time.perf_counter() - started

    def check_health(self) -> None:
        """Serve's health check: the replica answers, so it is healthy."""


def deployment(settings: Settings) -> Any:
    """The Serve deployment for these settings, with autoscaling and resources."""
    from ray import serve

    s = settings
    resources: dict[str, Any] = {"num_cpus": s.ray_cpus_per_replica}
    if s.ray_gpus_per_replica:
        resources["num_gpus"] = s.ray_gpus_per_replica
    return serve.deployment(
        ModelReplica,
        name=DEPLOYMENT_NAME,
        ray_actor_options=resources,
        max_ongoing_requests=MAX_ONGOING,
        autoscaling_config={
            "min_replicas": s.ray_min_replicas,
            "max_replicas": s.ray_max_replicas,
            # batches in flight per replica, those the routers hold included
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


def _keep_sigterm_graceful() -> None:
    """Ray's C++ core installs abseil's failure signal handler for SIGTERM in the driver, and
    that handler arms a 3-second ``alarm`` whose SIGALRM aborts the process (a core dump, exit
    134) however the SIGTERM is then handled. A front's SIGTERM is its graceful drain (streams
    told to move, results flushed, the local Ray instance shut down), which takes longer than
    that: every stop of a ``--engine ray`` front would dump core. Ray reads this variable when
    it is first imported, so it must be set before; a value the user set is kept."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


class RayClassifier:
    """The front's :class:`~voxlive.inference.base.Classifier`: each batch is one request to
    the deployment. ``predict`` may be called from several threads at once (the batcher keeps
    up to ``ray_max_replicas`` batches in flight)."""

    def __init__(self, settings: Settings) -> None:
        _keep_sigterm_graceful()  # before Ray is imported, as is the token mode
        if settings.ray_address:
            _token_auth_if_available()
        import ray
        from ray import serve

        self.settings = settings
        self._started_ray = False
        # Round trip minus the replica's model call, seconds, per call (the most recent 10 000):
        # what the hop to the replica and back adds.
        self.hops: deque[float] = deque(maxlen=10_000)
        self.retries = 0  # calls sent again after their replica died
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
        self._replicas = 1
        self._closed = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch_replicas, name="voxlive-ray-replicas", daemon=True
        )
        self._watcher.start()

    def parallel_calls(self) -> int:
        """Replicas running now (refreshed every :data:`REPLICAS_REFRESH_S`; at least 1): each
        runs one batch at a time, so the front's capacity is that many times one call's rate."""
        return self._replicas

    def _watch_replicas(self) -> None:
        """Ask Serve's controller how many replicas run, now and every few seconds, on this
        thread: the gauge is read on the event loop, which must not wait on the controller."""
        from ray import serve

        while True:
            try:
                app = serve.status().applications[APP_NAME]
                states = app.deployments[DEPLOYMENT_NAME].replica_states
                running = sum(n for state, n in states.items() if str(state).endswith("RUNNING"))
                self._replicas = max(running, 1)
            except Exception as exc:  # the controller restarting, the app being redeployed
                log.debug("replica count unavailable: %s", exc)
            if self._closed.wait(REPLICAS_REFRESH_S):
                return

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
        """One request for the whole batch; if its replica dies mid-call, one more (Serve
        routes it to a live replica, or holds it until the replacement is up), all within
        ``inference_timeout_ms``."""
        from ray.exceptions import RayActorError

        audio = np.ascontiguousarray(batch, dtype=np.float32)
        deadline = time.monotonic() + self.settings.inference_timeout_ms / 1000
        for attempt in (1, 2):
            started = time.perf_counter()
            response = self.handle.classify.remote(audio)
            try:
                probs, model_s = response.result(timeout_s=max(deadline - time.monotonic(), 0.001))
            except RayActorError as exc:  # the replica died (or is unreachable) mid-call
                if attempt == 2:
                    raise
                self.retries += 1
                log.warning("a replica failed mid-call (%s); sending the batch again",
                            type(exc).__name__)  # fmt: skip
                continue
            self.hops.append(time.perf_counter() - started - model_s)
            return np.asarray(probs, np.float32)
        raise AssertionError("unreachable")

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

        self._closed.set()
        self._watcher.join(timeout=REPLICAS_REFRESH_S)
        if self._started_ray:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
