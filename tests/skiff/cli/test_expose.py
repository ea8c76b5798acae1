"""`skiff expose` and `skiff create service` against a real control plane: the
Service kubectl would make (selector from the workload, ports, type), the
allocated node port, `skiff get svc` and kubectl's errors."""
import json

import pytest

pytestmark = pytest.mark.etcd

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {team: a}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, extra: x}}
    spec:
      containers:
      - name: c
        image: busybox
        ports: [{containerPort: 8080, name: http}]
"""


def test_expose_deployment_pod_and_create_service(skiff, controlplane):
    server = controlplane
    assert skiff("apply", "-f", "-", server=server, input=DEPLOYMENT).returncode == 0
    done = skiff("expose", "deploy/web", "--port", "80", "--target-port", "http", "--type", "NodePort",
                 server=server)
    assert (done.returncode, done.stdout.strip()) == (0, "service/web exposed")
    svc = json.loads(skiff("get", "svc", "web", "-o", "json", server=server).stdout)
    assert svc["spec"]["selector"] == {"app": "web"} and svc["metadata"]["labels"] == {"team": "a"}
    [port] = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, "http", "TCP")
    assert 30000 <= port["nodePort"] <= 32767 and svc["spec"]["clusterIP"].startswith("10.96.")
    table = skiff("get", "svc", "web", server=server).stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["web", "NodePort", svc["spec"]["clusterIP"], "<none>",
                                    f"80:{port['nodePort']}/TCP"]

    described = skiff("describe", "svc", "web", server=server).stdout.splitlines()
    assert "Selector:                 app=web" in described
    assert "TargetPort:               http/TCP" in described
    assert f"NodePort:                 <unset>  {port['nodePort']}/TCP" in described
    assert "Endpoints:                <none>" in described

    # Without --port: the container ports; again: AlreadyExists as kubectl words it.
    assert skiff("expose", "deployment", "web", "--name", "web2", server=server).returncode == 0
    again = skiff("expose", "deploy/web", "--port", "80", server=server)
    assert again.returncode == 1 and 'services "web" already exists' in again.stderr
    missing = skiff("expose", "deploy/nope", "--port", "80", server=server)
    assert missing.returncode == 1 and 'deployments "nope" not found' in missing.stderr

    made = skiff("create", "service", "clusterip", "db", "--tcp=5432:5432", server=server)
    assert (made.returncode, made.stdout.strip()) == (0, "service/db created")
    taken = skiff("create", "service", "nodeport", "clash", "--tcp=81:8080", f"--node-port={port['nodePort']}",
                  server=server)
    assert taken.returncode == 1
    assert f"spec.ports[0].nodePort: Invalid value: {port['nodePort']}: provided port is already allocated" \
        in taken.stderr
    headless = skiff("create", "service", "clusterip", "peers", "--clusterip=None", server=server)
    assert headless.returncode == 0
    assert skiff("get", "svc", "peers", server=server).stdout.splitlines()[1].split()[2] == "None"
