"""The cluster configs parse and say what they promise: token authentication on every node,
the dashboard closed to strangers, the project installed, autoscaling CPU and GPU workers,
results on shared storage, the stores' URLs from the environment, and no secret in the files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text(encoding="utf-8"))


def test_launcher_config_has_token_auth_loopback_dashboard_and_cpu_gpu_autoscaling():
    config = _load("ray-cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    cpu = [t for name, t in types.items() if name != config["head_node_type"]
           and not t["resources"].get("GPU")]  # fmt: skip
    assert gpu and cpu
    for group in gpu + cpu:
        assert group["min_workers"] <= group["max_workers"] <= config["max_workers"]
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    for start in (head_start, worker_start):
        assert "RAY_AUTH_MODE=token" in start and "RAY_AUTH_TOKEN_PATH=" in start
    assert any(path.endswith(".ray/auth_token") for path in config["file_mounts"])
    assert any("scripts/setup.sh" in command for command in config["setup_commands"])


@pytest.mark.parametrize("name", ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_manifests_have_token_auth_a_private_dashboard_and_shared_results(name):
    manifest = _load(name)
    assert manifest["apiVersion"] == "ray.io/v1"
    spec = manifest["spec"]
    cluster = spec["rayClusterSpec"] if manifest["kind"] == "RayJob" else spec
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["rayVersion"] >= "2.52.0"  # token auth needs Ray 2.52 or newer
    head = cluster["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"  # port-forward, no load balancer
    groups = [head] + cluster["workerGroupSpecs"]
    for group in groups:
        (container,) = group["template"]["spec"]["containers"]
        assert "adabert" in container["image"]  # the project is in the image
        assert {"secretRef": {"name": "adabert-stores"}} in container["envFrom"]
        assert any(m["mountPath"] == "/shared" for m in container["volumeMounts"])
    if manifest["kind"] == "RayJob":
        assert "--results-root /shared/" in spec["entrypoint"]
        assert spec["shutdownAfterJobFinishes"] is True
    else:
        limits = [g["template"]["spec"]["containers"][0]["resources"]["limits"]
                  for g in cluster["workerGroupSpecs"]]  # fmt: skip
        assert any("nvidia.com/gpu" in limit for limit in limits)
        assert all(g["minReplicas"] <= g["maxReplicas"] for g in cluster["workerGroupSpecs"])


@pytest.mark.parametrize(
    "name", ["ray-cluster.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"]
)
def test_no_secret_is_written_into_a_cluster_config(name):
    text = (CLUSTER / name).read_text(encoding="utf-8")
    assert not re.search(r"://[^/\s:@]+:[^@\s$]+@", text), "a URL with a password"
    assert not re.search(r"(?im)^\s*(auth_token|password|token)\s*:\s*\S", text)
