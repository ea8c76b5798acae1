"""Services through kubectl against a real control plane (etcd, the REST front
door, the controllers): the `kubernetes` Service, the docs' simple-service
manifest, `kubectl expose`, `get svc,endpointslices,ep` and `describe svc`."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from skiff.api import meta
from skiff.client import ApiClient, Conflict
from tests.controlplane.rest.test_kubectl import DEPLOYMENT, ok

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

# The Kubernetes docs' service/simple-service.yaml.
SIMPLE_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""


def until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def run_pod_as_kubelet(connect: Callable[[], ApiClient], name: str, ip: str) -> None:
    """What an agent would write: the pod Running and Ready with an IP. Read, change,
    write, and again on Conflict: the scheduler binds the pod just after it is created,
    so the version first read may already be gone, as an agent's would be."""
    async def body():
        async with connect() as c:
            for attempt in range(5):
                pod = await c.get("Pod", name)
                pod.status.phase = "Running"
                pod.status.pod_ip = ip
                meta.set_condition(pod.status.conditions, type_="Ready", status="True")
                try:
                    await c.update_status(pod)
                    return
                except Conflict:
                    if attempt == 4:
                        raise
    asyncio.run(body())


def test_kubernetes_service_simple_service_and_describe(rest, tmp_path):
    # The control plane makes it in the background once it serves, as kube-apiserver does.
    until(lambda: rest.kubectl("get", "svc", "kubernetes").returncode == 0, "the kubernetes Service", timeout=120)
    svc = rows(ok(rest.kubectl("get", "svc", "kubernetes")))
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1][:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    port = rest.url.rpartition(":")[2]
    assert ok(rest.kubectl("get", "ep", "kubernetes", "-o", "jsonpath={.subsets[0].ports[0].port}")) == port

    manifest = tmp_path / "simple-service.yaml"
    manifest.write_text(SIMPLE_SERVICE)
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "service/my-service created"
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "service/my-service unchanged"
    ip = ok(rest.kubectl("get", "svc", "my-service", "-o", "jsonpath={.spec.clusterIP}"))
    assert ip.startswith("10.96.") and ip != "10.96.0.1"
    assert ok(rest.kubectl("get", "svc", "my-service", "-o", "jsonpath={.spec.ports[0].targetPort}")) == "9376"

    # A pod the selector picks, running with an IP: the controller writes the slice and the Endpoints.
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: app, labels: {app.kubernetes.io/name: MyApp}}\n"
                   "spec: {containers: [{name: c, image: busybox}]}\n")
    ok(rest.kubectl("apply", "-f", str(pod)))
    run_pod_as_kubelet(rest.info.client, "app", "10.244.0.7")
    until(lambda: "10.244.0.7:9376" in ok(rest.kubectl("get", "ep", "my-service")), "the endpoints")
    table = ok(rest.kubectl("get", "svc,endpointslices,ep", "-l", "app.kubernetes.io/name!=x"))
    lines = rows(table)
    assert ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] in lines
    assert ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"] in lines
    assert ["NAME", "ENDPOINTS", "AGE"] in lines
    assert any(r[0].startswith("endpointslice.discovery.k8s.io/my-service-") and r[1:4] == ["IPv4", "9376",
                                                                                            "10.244.0.7"]
               for r in lines)
    assert any(r[:2] == ["endpoints/my-service", "10.244.0.7:9376"] for r in lines)
    wide = rows(ok(rest.kubectl("get", "svc", "my-service", "-o", "wide")))
    assert wide[0][-1] == "SELECTOR" and wide[1][-1] == "app.kubernetes.io/name=MyApp"

    described = ok(rest.kubectl("describe", "svc", "my-service")).splitlines()
    assert "Type:                     ClusterIP" in described
    assert f"IP:                       {ip}" in described
    assert "TargetPort:               9376/TCP" in described
    assert "Endpoints:                10.244.0.7:9376" in described

    # Taken and out-of-range IPs are refused as Kubernetes words it, with the field path.
    taken = rest.kubectl("create", "-f", "-", input=SIMPLE_SERVICE.replace("my-service", "other").replace(
        "  selector:", f"  clusterIP: {ip}\n  selector:"))
    assert taken.returncode != 0
    assert "spec.clusterIPs: Invalid value: []string{\"%s\"}: failed to allocate IP %s: provided IP is already " \
           "allocated" % (ip, ip) in taken.stderr


def test_kubectl_expose_a_deployment_as_node_port(rest, tmp_path):
    manifest = tmp_path / "d.yaml"
    manifest.write_text(DEPLOYMENT)
    ok(rest.kubectl("apply", "-f", str(manifest)))
    assert ok(rest.kubectl("expose", "deployment", "d1", "--port", "80", "--target-port", "8080",
                           "--type", "NodePort")).strip() == "service/d1 exposed"
    svc = rows(ok(rest.kubectl("get", "svc", "d1", "-o", "wide")))[1]
    assert svc[1] == "NodePort" and svc[-1] == "app=d1"
    port, node_port = svc[4].removesuffix("/TCP").split(":")
    assert port == "80" and 30000 <= int(node_port) <= 32767
    assert ok(rest.kubectl("create", "service", "clusterip", "plain", "--tcp=5678:8080")).strip() == \
        "service/plain created"
    assert rows(ok(rest.kubectl("get", "svc", "plain")))[1][4] == "5678/TCP"
    assert ok(rest.kubectl("get", "svc", "plain", "-o", "jsonpath={.spec.ports[0].targetPort}")) == "8080"
    refused = rest.kubectl("create", "service", "nodeport", "again", "--tcp=81:8080", f"--node-port={node_port}")
    assert refused.returncode != 0 and "provided port is already allocated" in refused.stderr
