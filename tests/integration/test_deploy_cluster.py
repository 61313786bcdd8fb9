"""The cluster deployment, validated without a Docker engine or Kubernetes: Compose's own
parser on deploy/cluster/docker-compose.yml (HAProxy in front of N fronts, each with its agent;
a Ray head and workers in a profile), HAProxy's own check of the config its entrypoint renders,
and the KEDA ScaledObject against a schema of the fields KEDA needs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.integration.test_deploy import BIN, ROOT
from voxlive.bench.balancer import HAPROXY, render

COMPOSE = ROOT / "deploy/cluster/docker-compose.yml"


def _config(*args: str, **env: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(COMPOSE), *args, "config", "--format", "json"],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    )  # fmt: skip
    config: dict[str, Any] = json.loads(out.stdout)
    return config


def test_haproxy_on_8000_in_front_of_n_fronts_each_with_its_agent() -> None:
    config = _config(FRONTS="5", VOXLIVE_MODEL="pitch")
    haproxy, front = config["services"]["haproxy"], config["services"]["front"]
    assert set(config["services"]) == {"haproxy", "front"}  # Ray only with --profile ray
    assert [(p["published"], p["target"]) for p in haproxy["ports"]] == [("8000", 8000)]
    assert haproxy["environment"]["FRONTS"] == "5" and front["deploy"]["replicas"] == 5
    assert '*front:8000:8100"' in haproxy["entrypoint"][-1]  # render.sh's DNS form
    assert haproxy["volumes"][0]["target"] == "/voxlive-haproxy"
    env = front["environment"]
    assert env["VOXLIVE_AGENT_PORT"] == "8100" and env["VOXLIVE_MODEL"] == "pitch"
    address = haproxy["networks"]["default"]["ipv4_address"]
    assert env["VOXLIVE_TRUSTED_PROXIES"] == address  # the fronts see clients, not the proxy
    assert "readyz" in " ".join(front["healthcheck"]["test"])
    assert front["build"]["dockerfile"] == "deploy/backend.Dockerfile"
    assert front["stop_grace_period"] == "30s"  # SIGTERM: drain, then the streams get 10 s


def test_the_ray_profile_adds_a_head_and_workers() -> None:
    config = _config("--profile", "ray", RAY_WORKERS="2", VOXLIVE_ENGINE="ray",
                     VOXLIVE_RAY_ADDRESS="ray-head:6379")  # fmt: skip
    head, worker = config["services"]["ray-head"], config["services"]["ray-worker"]
    assert head["command"][:3] == ["ray", "start", "--head"]
    assert worker["command"][:2] == ["ray", "start"] and worker["deploy"]["replicas"] == 2
    assert config["services"]["front"]["environment"]["VOXLIVE_RAY_ADDRESS"] == "ray-head:6379"


def test_the_config_the_haproxy_entrypoint_renders_passes_haproxy_s_check(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(":18000", ["3*front:8000:8100"]))
    text = cfg.read_text()
    assert "server-template front1- 1-3 front:8000 resolvers dns init-addr none" in text
    assert "agent-check agent-port 8100 agent-inter 1s" in text
    check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# What KEDA (keda.sh/v1alpha1) requires of a ScaledObject with Prometheus triggers, and the
# HPA behavior fields it passes on.
_POLICY = {
    "type": "object",
    "required": ["type", "value", "periodSeconds"],
    "properties": {
        "type": {"enum": ["Pods", "Percent"]},
        "value": {"type": "integer", "minimum": 1},
        "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
    },
}
_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "items": _POLICY},
    },
}
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object", "properties": {"horizontalPodAutoscalerConfig": {
                    "type": "object", "properties": {"behavior": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"scaleUp": _RULES, "scaleDown": _RULES}}}}}},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["type", "metadata"],
                    "properties": {
                        "type": {"const": "prometheus"},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "metadata": {
                            "type": "object", "required": ["serverAddress", "query", "threshold"],
                            "additionalProperties": {"type": "string"},  # KEDA takes strings
                        },
                    },
                }},
            },
        },
    },
}  # fmt: skip


def test_the_keda_scaled_object_is_valid_and_scales_on_the_routing_load() -> None:
    doc = yaml.safe_load((ROOT / "deploy/cluster/keda-scaledobject.yaml").read_text())
    jsonschema.validate(doc, SCALED_OBJECT)
    spec = doc["spec"]
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert "voxlive_load" in trigger["metadata"]["query"]  # the gauge the agent routes by
    assert 0 < float(trigger["metadata"]["threshold"]) < 0.9  # below the agents' drain point
    for bad in ({**doc, "kind": "Deployment"}, {**doc, "spec": {**spec, "triggers": []}}):
        try:
            jsonschema.validate(bad, SCALED_OBJECT)
        except jsonschema.ValidationError:
            continue
        raise AssertionError("expected the schema to refuse a broken ScaledObject")
