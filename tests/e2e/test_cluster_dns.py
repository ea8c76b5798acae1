"""Cluster DNS on `skiff up --nodes 2`: a pod on each node resolves a Service's
name (short, through its search path, and fully qualified) to the ClusterIP
from its own node's DNS server, a named port's SRV, an ExternalName's CNAME, a
headless Service's pod by its hostname.subdomain (the EndpointSlice
controller's hostname), an unknown name is NXDOMAIN, and the containers see
the Services' environment variables (the kubernetes Service's too).

Root and the real kernel. No packet leaves the machine: the queries go from a
pod to its node's bridge address, inside namespaces the cluster creates; the
agents have no --dns-upstream, so other names are refused at once.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_nodes import leftovers

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - {name: pg, port: 5432}
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: search.example.com
"""

PODS = """\
apiVersion: v1
kind: Pod
metadata: {{name: client-{i}}}
spec:
  nodeName: {node}
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
---
"""

DB = """\
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  labels: {{app: db}}
spec:
  nodeName: {node}
  hostname: db-0
  subdomain: db
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""


def _addresses(nslookup_output: str) -> list[str]:
    """The answer's addresses in busybox nslookup's output (the server's own line is 'Address:\\tIP:53')."""
    return re.findall(r"^Address: (\d+\.\d+\.\d+\.\d+)$", nslookup_output, re.M)


def test_pods_on_every_node_resolve_services_by_name_and_see_their_variables(private_cluster):
    c = private_cluster
    name = f"skiffdn{c.tag[:2]}"
    node_cidr = f"10.213.{int(c.tag[:2], 16)}.0/24"
    cluster_cidr = f"10.{100 + int(c.tag, 16) % 100}.0.0/16"
    up = subprocess.run(c.up_args("--detach", "--nodes", "2", "--name", name, "--node-cidr", node_cidr),
                        env=c.env(), capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    nodes = [f"{name}-node-{i}" for i in (1, 2)]

    # The Services first: a container's variables are those of the Services that exist when it starts.
    (c.base / "services.yaml").write_text(SERVICES)
    applied = c.skiff("apply", "-f", str(c.base / "services.yaml"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    cluster_ip = wait_for("web's ClusterIP", lambda: json.loads(
        c.skiff("get", "service", "web", "-o", "json").stdout or "{}").get("spec", {}).get("clusterIP"))

    (c.base / "pods.yaml").write_text("".join(PODS.format(i=i, node=node) for i, node in enumerate(nodes, 1))
                                      + DB.format(node=nodes[1]))
    applied = c.skiff("apply", "-f", str(c.base / "pods.yaml"))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def running():
        pods = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods if p["status"].get("phase") == "Running"}
        return ips if all(ips.get(n) for n in ("client-1", "client-2", "db-0")) else None

    ips = wait_for("the pods Running", running)
    node_of = {n["metadata"]["name"]: n["spec"]["podCIDR"]
               for n in json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]}

    for i, node in enumerate(nodes, 1):
        pod = f"client-{i}"
        # Kubernetes' resolv.conf, the nameserver being this pod's own node (its bridge's gateway).
        resolv = c.skiff("exec", pod, "--", "cat", "/etc/resolv.conf").stdout
        gateway = node_of[node].split("/")[0].rsplit(".", 1)[0] + ".1"
        assert f"nameserver {gateway}\n" in resolv, resolv
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
        assert "options ndots:5" in resolv, resolv

        def lookup(host: str, *options: str, pod=pod):
            out = c.skiff("exec", pod, "--", "nslookup", *options, host, timeout=60)
            return out.stdout + out.stderr

        # The short name through the search path, and the full one: the ClusterIP.
        short = wait_for(f"{pod} resolves web", lambda: cluster_ip in _addresses(lookup("web")) and lookup("web"))
        assert "Name:\tweb.default.svc.cluster.local" in short
        assert _addresses(lookup("web.default.svc.cluster.local")) == [cluster_ip]
        # The headless Service's pod by hostname.subdomain: its pod IP (once its endpoint is ready).
        wait_for(f"{pod} resolves db-0.db", lambda: _addresses(lookup("db-0.db.default.svc.cluster.local"))
                 == [ips["db-0"]], timeout=60)
        # SRV of a named port, and an ExternalName's CNAME (its target is not ours: refused, nothing forwarded).
        srv = lookup("_http._tcp.web.default.svc.cluster.local", "-type=SRV")
        assert "0 100 80 web.default.svc.cluster.local" in srv, srv
        cname = lookup("search.default.svc.cluster.local", "-type=CNAME")
        assert "canonical name = search.example.com" in cname, cname
        # Nothing by that name: NXDOMAIN.
        assert "NXDOMAIN" in lookup("nope.default.svc.cluster.local")

        env = c.skiff("exec", pod, "--", "env").stdout
        assert f"WEB_SERVICE_HOST={cluster_ip}\n" in env
        assert "WEB_SERVICE_PORT=80\n" in env and "WEB_SERVICE_PORT_HTTP=80\n" in env
        assert f"WEB_PORT=tcp://{cluster_ip}:80\n" in env
        assert f"WEB_PORT_80_TCP_ADDR={cluster_ip}\n" in env
        assert "DB_SERVICE_HOST" not in env and "SEARCH_SERVICE_HOST" not in env   # headless, ExternalName
        assert "KUBERNETES_SERVICE_HOST=10.96.0.1\n" in env and "KUBERNETES_SERVICE_PORT=443\n" in env

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr, cluster_cidr]) == {}
