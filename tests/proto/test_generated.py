"""The generated Python in proto/ matches the .proto sources."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh():
    run = subprocess.run([sys.executable, "-m", "proto.generate", "--check"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"generated code is stale:\n{run.stderr}"


def test_kubernetes_json_names_round_trip():
    from google.protobuf import json_format
    from proto.skiff.v1 import types_pb2

    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                                         "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
                "status": {"podIP": "10.244.0.5", "hostIP": "127.0.0.1",
                           "containerStatuses": [{"name": "c", "containerID": "skiff://x"}]}}
    pod = json_format.ParseDict(manifest, types_pb2.Pod())
    assert pod.spec.containers[0].ports[0].host_port == 8080
    assert json_format.MessageToDict(pod) == manifest
