"""Container environments as kubelet builds them (agent/envvars.py): envFrom
with prefix, env in order with $(VAR) expansion, valueFrom of every kind;
and in the pod workers, a missing key holds the container in
CreateContainerConfigError until its ConfigMap appears (a per-object watch)."""
from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from agent.containers import ContainerConfigError
from agent.envvars import EnvContext, container_env
from controlplane.testing import FakeApiClient
from proto.skiff.v1 import types_pb2
from skiff.api import manifest
from skiff.controller import SharedInformerFactory
from tests.agent.test_podworkers import World

ALLOCATABLE = (Fraction(4), 8 << 30)


def _pod(text: str) -> types_pb2.Pod:
    (doc,) = manifest.parse_text(text, source="pod.yaml")
    assert doc.ok, [str(e) for e in doc.errors]
    pod = doc.obj
    pod.metadata.uid, pod.spec.node_name = "uid-1", "node-1"
    return pod


def _objects(*objs):
    found = {(type(o).__name__, o.metadata.namespace or "default", o.metadata.name): o for o in objs}
    return lambda kind, namespace, name: found.get((kind, namespace, name))


CM = types_pb2.ConfigMap(data={"A": "1", "B": "$(A)", "bad key": "x", "SPECIAL_LEVEL": "very"})
CM.metadata.name = "cm"
SECRET = types_pb2.Secret(data={"password": b"s3cret"})
SECRET.metadata.name = "creds"

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: envs, labels: {app: web}, annotations: {team: blue}}
spec:
  serviceAccountName: builder
  containers:
  - name: main
    image: busybox
    command: [echo, "$(C)", "$(P_A)", "$$(C)"]
    resources:
      requests: {cpu: 125m, memory: 32Mi}
      limits: {cpu: 250m}
    envFrom:
    - prefix: P_
      configMapRef: {name: cm}
    env:
    - {name: C, value: "$(P_A)-$(D)"}
    - {name: D, value: d}
    - name: E
      valueFrom: {configMapKeyRef: {name: cm, key: SPECIAL_LEVEL}}
    - {name: F, value: "$(E)$$x$(D)"}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: MAYBE
      valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: APP
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    - name: SA
      valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}
    - name: IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: CPU_MILLIS
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
    - name: CPU_REQUEST
      valueFrom: {resourceFieldRef: {containerName: main, resource: requests.cpu}}
    - name: MEM_MI
      valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}
    - name: MEM_LIMIT
      valueFrom: {resourceFieldRef: {resource: limits.memory}}
"""


def test_kubernetes_order_expansion_and_every_source():
    pod = _pod(POD)
    env = container_env(pod, pod.spec.containers[0], EnvContext(lookup=_objects(CM, SECRET), pod_ip="10.1.0.7",
                                                                host_ip="10.0.0.5", allocatable=ALLOCATABLE))
    v = env.variables
    assert env.invalid_keys == ["P_bad key"]
    assert (v["P_A"], v["P_B"]) == ("1", "$(A)")           # envFrom values are never expanded
    assert v["C"] == "1-$(D)"                                # D is defined only after C
    assert (v["E"], v["F"]) == ("very", "very$xd")
    assert v["PASSWORD"] == "s3cret" and "MAYBE" not in v
    assert (v["POD_NAME"], v["APP"], v["SA"], v["IP"]) == ("envs", "web", "builder", "10.1.0.7")
    assert (v["CPU_MILLIS"], v["CPU_REQUEST"], v["MEM_MI"]) == ("250", "1", "32")
    assert v["MEM_LIMIT"] == str(8 << 30)                    # no limit: the node's allocatable
    assert list(v)[:3] == ["P_A", "P_B", "P_SPECIAL_LEVEL"]   # envFrom first, then env in order


@pytest.mark.parametrize("ref, message", [
    ("configMapKeyRef: {name: cm, key: MISSING}", "couldn't find key MISSING in ConfigMap default/cm"),
    ("configMapKeyRef: {name: absent, key: k}", 'configmap "absent" not found'),
    ("secretKeyRef: {name: creds, key: user}", "couldn't find key user in Secret default/creds"),
])
def test_a_missing_key_that_is_not_optional_names_it(ref, message):
    pod = _pod(POD.split("    envFrom:")[0] + f"    env:\n    - name: X\n      valueFrom: {{{ref}}}\n")
    with pytest.raises(ContainerConfigError) as caught:
        container_env(pod, pod.spec.containers[0], EnvContext(lookup=_objects(CM, SECRET), allocatable=ALLOCATABLE))
    assert caught.value.message == message and caught.value.reason == "CreateContainerConfigError"


def test_missing_key_waits_in_create_container_config_error_until_the_configmap_appears(tmp_path):
    async def scenario():
        api = FakeApiClient()
        factory = SharedInformerFactory(api)
        w = World(tmp_path)
        workers = type(w.workers)(node_name="node-1", node_ip="10.0.0.5", pods=w.api, client=w.client,
                                  runtime=w.runtime, images=w.images, pods_dir=w.pods_dir, pids_limit=100,
                                  clock=w.clock, informers=factory)
        uid = w.api.add_pod("needs-config").metadata.uid
        stored = w.api.pods[("default", "needs-config")]
        var = stored.spec.containers[0].env.add(name="LEVEL")
        var.value_from.config_map_key_ref.name, var.value_from.config_map_key_ref.key = "special-config", "SPECIAL_LEVEL"
        await workers.reconcile(uid)
        _, cs = w.status("needs-config")
        assert (cs.state.waiting.reason, cs.state.waiting.message) == (
            "CreateContainerConfigError", 'configmap "special-config" not found')
        assert w.runtime.running() == []
        # Only that one object is watched.
        assert [(i.kind, i.namespace, i.field_selector) for i in factory.informers] == [
            ("ConfigMap", "default", "metadata.name=special-config")]
        await api.create(types_pb2.ConfigMap(metadata=types_pb2.ObjectMeta(name="special-config"),
                                             data={"OTHER": "x"}))
        for _ in range(100):
            if uid in workers.pending:
                break
            await asyncio.sleep(0.01)
        assert uid in workers.pending          # the ConfigMap's arrival woke the pod
        workers.pending.clear()
        await workers.reconcile(uid)
        _, cs = w.status("needs-config")
        assert cs.state.waiting.message == "couldn't find key SPECIAL_LEVEL in ConfigMap default/special-config"
        cm = await api.get("ConfigMap", "special-config")
        cm.data["SPECIAL_LEVEL"] = "very"
        await api.update(cm)
        for _ in range(100):
            if uid in workers.pending:
                break
            await asyncio.sleep(0.01)
        await workers.reconcile(uid)
        _, cs = w.status("needs-config")
        assert cs.state.HasField("running")
        (running,) = w.runtime.running()
        assert ("LEVEL", "very") in w.runtime.containers[running.id].config.env
        # The pod gone: its watch ends.
        await workers._free(uid, workers.records[uid], grace=0)
        await asyncio.sleep(0.05)
        assert factory.informers == []
        await factory.stop()
    asyncio.run(scenario())
