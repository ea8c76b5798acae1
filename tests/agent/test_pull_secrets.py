"""imagePullSecrets: credentials from kubernetes.io/dockerconfigjson and
dockercfg Secrets (agent/pullsecrets.py), and a pod pulling its image from
a registry with basic auth (Debian's docker-registry on 127.0.0.1, htpasswd)
only with its secret."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest

from agent.images.registry import Credentials
from agent.pullsecrets import credentials_for
from proto.skiff.v1 import types_pb2


def _secret(name: str, kind: str, payload: dict) -> types_pb2.Secret:
    key = ".dockerconfigjson" if kind == "kubernetes.io/dockerconfigjson" else ".dockercfg"
    s = types_pb2.Secret(type=kind, data={key: json.dumps(payload).encode()})
    s.metadata.name, s.metadata.namespace = name, "default"
    return s


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _pod(image: str, *secrets: str) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "p", "default", "uid-p"
    pod.spec.containers.add(name="main", image=image)
    for name in secrets:
        pod.spec.image_pull_secrets.add(name=name)
    return pod


def test_credentials_from_the_pods_secrets_in_order():
    objs = {s.metadata.name: s for s in (
        _secret("other", "kubernetes.io/dockerconfigjson", {"auths": {"quay.io": {"auth": _auth("q", "1")}}}),
        _secret("regcred", "kubernetes.io/dockerconfigjson",
                {"auths": {"127.0.0.1:5000": {"auth": _auth("alice", "s3cret")}}}),
        _secret("hub", "kubernetes.io/dockercfg", {"https://index.docker.io/v1/": {"username": "u", "password": "p"}}),
    )}
    lookup = lambda kind, ns, name: objs.get(name)  # noqa: E731
    image = "127.0.0.1:5000/private/bb:1"
    creds, missing = credentials_for(_pod(image, "gone", "other", "regcred"), image, lookup)
    assert creds == Credentials("alice", "s3cret") and missing == ["gone"]
    assert credentials_for(_pod("busybox", "hub"), "busybox", lookup)[0] == Credentials("u", "p")
    assert credentials_for(_pod("busybox", "regcred"), "busybox", lookup) == (None, [])


def test_a_pod_pulls_from_a_private_registry_with_its_pull_secret(tmp_path):
    from tests.agent.images.test_image_registry import REGISTRY, Registry, crypt
    if REGISTRY is None:
        pytest.skip("apt-get install docker-registry")
    from agent.imagepuller import StoreRegistry
    from agent.images.bootstrap import bootstrap_busybox
    from agent.images.registry import push
    from agent.images.store import ImageStore
    from agent.podworkers import PodWorkers
    from controlplane.testing import FakeApiClient
    from skiff.controller import SharedInformerFactory
    from tests.agent.test_podworkers import World

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    (tmp_path / "reg").mkdir()
    reg = Registry(tmp_path / "reg", {"htpasswd": {"realm": "skiff-test", "path": str(htpasswd)}})
    try:
        source = ImageStore(root=tmp_path / "source")
        bootstrap_busybox(store=source)
        image = f"{reg.address}/private/bb:1"
        source.tag("busybox", image)
        push(store=source, ref=image, credentials=Credentials("alice", "s3cret"))

        async def scenario():
            api = FakeApiClient()
            factory = SharedInformerFactory(api)
            await api.create(_secret("regcred", "kubernetes.io/dockerconfigjson",
                                     {"auths": {reg.address: {"auth": _auth("alice", "s3cret")}}}))
            w = World(tmp_path)
            node_store = ImageStore(root=tmp_path / "node")
            workers = PodWorkers(node_name="node-1", node_ip="10.0.0.5", pods=w.api, client=w.client,
                                 runtime=w.runtime, images=node_store, pods_dir=w.pods_dir, pids_limit=100,
                                 clock=w.clock, informers=factory, registry=StoreRegistry(store=node_store))
            results = {}
            for name, secrets in (("without", ()), ("with", ("regcred",))):
                uid = w.api.add_pod(name, containers=[{"name": "main", "image": image}]).metadata.uid
                for s in secrets:
                    w.api.pods[("default", name)].spec.image_pull_secrets.add(name=s)
                for _ in range(300):
                    workers.pending.discard(uid)
                    await workers.reconcile(uid)
                    cs = w.api.pod(name).status.container_statuses[0]
                    if cs.state.HasField("running") or cs.state.waiting.reason in ("ErrImagePull",
                                                                                   "ImagePullBackOff"):
                        break
                    await asyncio.sleep(0.05)
                results[name] = cs
            await workers.shutdown()
            await factory.stop()
            return results
        results = asyncio.run(scenario())
        assert results["with"].state.HasField("running")
        assert results["without"].state.waiting.reason == "ErrImagePull"
        assert "authentication required" in results["without"].state.waiting.message
    finally:
        reg.stop()
