"""The authorizers read the API server's own informers (decision 44): on a secure control
plane, a node's and a user's requests (the node authorizer's pod cache, RBAC's four caches)
open no etcd watch beyond the watch cache's one per kind. Observed as an operator would: etcd's
own gauge of watchers (etcd_debugging_mvcc_watcher_total on its /metrics) on an
etcd of its own, counted from what it was before this test's control plane started."""
from __future__ import annotations

import asyncio
import time
import urllib.request

import pytest

from skiff.api import kinds
from skiff.client import ApiClient, ApiError
from proto.skiff.v1 import rbac_pb2


@pytest.fixture
def etcd(private_etcd):
    """This test's own etcd (controlplane_factory takes it too): the watcher count is etcd-wide,
    and on the shared etcd a watch an earlier test left closing moved it mid-test (CI: 25 for 26)."""
    return private_etcd


def _etcd_watchers(etcd: str) -> int:
    with urllib.request.urlopen(f"http://{etcd}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    raise AssertionError("etcd reports no etcd_debugging_mvcc_watcher_total")


def _steady(etcd: str) -> int:
    """The watcher count once two reads agree (a control plane an earlier test stopped has gone)."""
    seen = _etcd_watchers(etcd)
    for _ in range(50):
        time.sleep(0.2)
        seen, before = _etcd_watchers(etcd), seen
        if seen == before:
            break
    return seen


def _reached(etcd: str, want: int) -> int:
    """The watcher count once it is `want` (the watch cache warms in the background), or the last seen."""
    seen = _etcd_watchers(etcd)
    for _ in range(300):
        if seen == want:
            break
        time.sleep(0.2)
        seen = _etcd_watchers(etcd)
    return seen


def _binding() -> rbac_pb2.RoleBinding:
    b = rbac_pb2.RoleBinding(api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding",
                             role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                                       name="view"))
    b.metadata.name, b.metadata.namespace = "alice-view", "default"
    b.subjects.add(kind="User", name="alice")
    return b


@pytest.mark.etcd
def test_the_authorizers_open_no_etcd_watch_of_their_own(controlplane_factory, etcd):
    baseline = _steady(etcd)
    info = controlplane_factory(secure=True)
    # The watch cache keeps one etcd watch per kind (controlplane/store/cacher.py), all warmed at start.
    want = baseline + len({kind.resource for kind in kinds.all_kinds()})
    assert _reached(etcd, want) == want, "the watch cache's one etcd watch per kind"
    files = info.pki
    files.ensure_node(files.ensure_ca(), "n1", address="127.0.0.1")
    files.issue_user("alice", user="alice", groups=["dev"])

    async def requests() -> None:
        async with ApiClient(info.address, credentials=files.credentials("node-n1")) as node, \
                ApiClient(info.address, credentials=files.credentials("alice")) as alice, \
                ApiClient(info.address, credentials=files.credentials("admin")) as admin:
            with pytest.raises(ApiError, match="forbidden"):   # the node authorizer's pods: none of n1 names it
                await node.get("Secret", "db", "default")
            with pytest.raises(ApiError, match="forbidden"):   # RBAC's roles and bindings: nothing for alice
                await alice.list("Pod", "default")
            # Granted once RBAC's RoleBinding cache has the binding: its watch is open by then.
            await admin.create(_binding())
            for _ in range(300):
                try:
                    await alice.list("Pod", "default")
                    return
                except ApiError as exc:
                    assert "forbidden" in exc.message
                    await asyncio.sleep(0.1)
            raise AssertionError("alice's RoleBinding never took effect")

    asyncio.run(asyncio.wait_for(requests(), 120))
    # Before decision 44 the authorizers' informers over a second registry opened 5 more
    # (pods, roles, clusterroles, rolebindings, clusterrolebindings).
    assert _etcd_watchers(etcd) == want
