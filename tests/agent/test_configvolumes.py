"""configMap / secret / downwardAPI / projected volume files (agent/configvolumes.py)
and the `..data` symlink swap that updates them (agent/atomicwriter.py); in the pod
workers, a configMap volume waits for its ConfigMap and follows its updates."""
from __future__ import annotations

import asyncio
import os
from fractions import Fraction

import pytest

from agent import atomicwriter, configvolumes
from agent.envvars import EnvContext
from controlplane.testing import FakeApiClient
from proto.skiff.v1 import types_pb2
from skiff.api import kinds, manifest
from skiff.controller import SharedInformerFactory
from tests.agent.test_podworkers import World

ALLOCATABLE = (Fraction(2), 4 << 30)


def test_atomic_writer_swaps_whole_versions(tmp_path):
    d = tmp_path / "vol"
    assert atomicwriter.write(d, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = atomicwriter.current(d)
    assert sorted(os.listdir(d)) == sorted(["..data", first.name, "a", "dir"])
    assert os.readlink(d / "a") == "..data/a" and (d / "dir" / "b").read_bytes() == b"2"
    assert (first / "dir" / "b").stat().st_mode & 0o777 == 0o600
    assert not atomicwriter.write(d, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})   # unchanged: untouched
    assert atomicwriter.current(d) == first
    reader = open(d / "a", "rb")            # a reader of the old version keeps it
    assert atomicwriter.write(d, {"a": (b"new", 0o644), "c": (b"3", 0o644)})
    assert (d / "a").read_bytes() == b"new" and (d / "c").read_bytes() == b"3"
    assert not (d / "dir").exists() and not first.exists()
    assert reader.read() == b"1"
    reader.close()
    assert sorted(e for e in os.listdir(d) if e.startswith("..")) == sorted(["..data", atomicwriter.current(d).name])


def _pod(text: str) -> types_pb2.Pod:
    (doc,) = manifest.parse_text(text, source="pod.yaml")
    assert doc.ok, [str(e) for e in doc.errors]
    return kinds.kind_of(doc.obj).strategy.defaults(doc.obj)


def _lookup(*objs):
    found = {(type(o).__name__, o.metadata.name): o for o in objs}
    return lambda kind, namespace, name: found.get((kind, name))


VOLUMES = """\
apiVersion: v1
kind: Pod
metadata: {name: vols, namespace: default, labels: {zone: us-est-coast, rack: rack-22}}
spec:
  containers:
  - name: main
    image: busybox
    resources: {limits: {memory: 64Mi}}
  volumes:
  - name: all-keys
    configMap: {name: cm}
  - name: some-keys
    configMap:
      name: cm
      defaultMode: 0400
      items: [{key: game.properties, path: conf/game, mode: 0600}]
  - name: creds
    secret: {secretName: creds}
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: together
    projected:
      sources:
      - configMap: {name: cm, items: [{key: ui.properties, path: ui}]}
      - secret: {name: creds}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
  - name: maybe
    configMap: {name: absent, optional: true}
"""


def test_payloads_of_every_config_volume_kind():
    cm = types_pb2.ConfigMap(data={"game.properties": "lives=3", "ui.properties": "color=blue"},
                             binary_data={"logo": b"\x89PNG"})
    cm.metadata.name = "cm"
    secret = types_pb2.Secret(data={"password": b"s3cret"})
    secret.metadata.name = "creds"
    pod = _pod(VOLUMES)
    ctx = EnvContext(lookup=_lookup(cm, secret), allocatable=ALLOCATABLE)
    files = {v.name: configvolumes.payload(pod, v, ctx) for v in pod.spec.volumes}
    assert files["all-keys"] == {"game.properties": (b"lives=3", 0o644), "ui.properties": (b"color=blue", 0o644),
                                 "logo": (b"\x89PNG", 0o644)}
    assert files["some-keys"] == {"conf/game": (b"lives=3", 0o600)}
    assert files["creds"] == {"password": (b"s3cret", 0o644)}
    assert files["podinfo"] == {"labels": (b'rack="rack-22"\nzone="us-est-coast"', 0o644),
                                "name": (b"vols", 0o644), "mem": (b"64", 0o644)}
    assert files["together"] == {"ui": (b"color=blue", 0o644), "password": (b"s3cret", 0o644),
                                 "ns": (b"default", 0o644)}
    assert files["maybe"] == {}


def test_a_missing_configmap_or_key_is_named(tmp_path):
    pod = _pod(VOLUMES)
    ctx = EnvContext(lookup=_lookup(), allocatable=ALLOCATABLE)
    with pytest.raises(configvolumes.VolumeError) as caught:
        configvolumes.sync(pod, tmp_path, ctx)
    assert str(caught.value) == 'MountVolume.SetUp failed for volume "all-keys" : configmap "cm" not found'
    cm = types_pb2.ConfigMap(data={"ui.properties": "x"})
    cm.metadata.name = "cm"
    with pytest.raises(configvolumes.VolumeError) as caught:
        configvolumes.payload(pod, pod.spec.volumes[1], EnvContext(lookup=_lookup(cm), allocatable=ALLOCATABLE))
    assert str(caught.value) == "configmap references non-existent config key: game.properties"


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: default}
spec:
  containers:
  - name: main
    image: busybox
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: config, mountPath: /etc/level, subPath: SPECIAL_LEVEL}
  volumes:
  - name: config
    configMap: {name: special-config}
"""


def test_configmap_volume_waits_for_its_configmap_and_follows_updates(tmp_path):
    async def scenario():
        api = FakeApiClient()
        factory = SharedInformerFactory(api)
        w = World(tmp_path)
        workers = type(w.workers)(node_name="node-1", node_ip="10.0.0.5", pods=w.api, client=w.client,
                                  runtime=w.runtime, images=w.images, pods_dir=w.pods_dir, pids_limit=100,
                                  clock=w.clock, informers=factory)
        events: list[tuple[str, str]] = []
        workers._event = lambda pod, kind, reason, message: events.append((reason, message))
        pod = _pod(POD)
        pod.metadata.uid, pod.spec.node_name = "uid-reader", "node-1"
        w.api.pods[("default", "reader")] = w.api._bump(pod)
        uid = pod.metadata.uid
        await workers.reconcile(uid)
        _, cs = w.status("reader")
        message = 'MountVolume.SetUp failed for volume "config" : configmap "special-config" not found'
        assert (cs.state.waiting.reason, cs.state.waiting.message) == ("ContainerCreating", message)
        assert ("FailedMount", message) in events and w.runtime.running() == []

        cm = types_pb2.ConfigMap(metadata=types_pb2.ObjectMeta(name="special-config"),
                                 data={"SPECIAL_LEVEL": "very", "SPECIAL_TYPE": "charm"})
        await api.create(cm)
        await _woken(workers, uid)
        await workers.reconcile(uid)
        (running,) = w.runtime.running()
        mounts = {m.target: m for m in w.runtime.containers[running.id].config.mounts}
        volume = workers.records[uid].paths.volume_dir("config")
        assert mounts["/etc/config"].source == str(volume) and mounts["/etc/config"].read_only
        assert (volume / "SPECIAL_LEVEL").read_text() == "very"
        pinned = mounts["/etc/level"].source           # subPath: one version's file
        assert pinned.startswith(str(volume / "..")) and pinned.endswith("/SPECIAL_LEVEL")

        cm = await api.get("ConfigMap", "special-config")
        cm.data["SPECIAL_LEVEL"] = "extremely"
        del cm.data["SPECIAL_TYPE"]
        await api.update(cm)
        await _woken(workers, uid)
        await workers.reconcile(uid)
        assert (volume / "SPECIAL_LEVEL").read_text() == "extremely"
        assert not (volume / "SPECIAL_TYPE").exists()
        assert w.runtime.running()[0].id == running.id     # updated in place, no restart
        await workers._free(uid, workers.records[uid], grace=0)
        await factory.stop()
    asyncio.run(scenario())


async def _woken(workers, uid: str) -> None:
    for _ in range(200):
        if uid in workers.pending:
            workers.pending.clear()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the ConfigMap's change did not wake the pod")
