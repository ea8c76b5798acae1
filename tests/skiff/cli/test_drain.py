"""`skiff drain` through the real CLI against a real control plane (no agent:
a stand-in confirms the graceful deletions, as an agent would): kubectl's
refusals for DaemonSet, emptyDir and unmanaged pods, --dry-run=client, and a
forced drain that evicts and waits for the pods to go."""
from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from skiff.api.convert import to_object
from skiff.client import ApiClient

pytestmark = pytest.mark.etcd


@contextlib.contextmanager
def confirming_agent(server: str):
    """Removes pods marked for deletion (grace 0), as the node's agent does once their containers stop."""
    stop = threading.Event()

    async def loop():
        async with ApiClient(server) as c:
            while not stop.is_set():
                for pod in (await c.list("Pod"))[0]:
                    if pod.metadata.HasField("deletion_timestamp"):
                        with contextlib.suppress(Exception):
                            await c.delete("Pod", pod.metadata.name, pod.metadata.namespace, 0,
                                           precondition_uid=pod.metadata.uid)
                await asyncio.sleep(0.1)

    thread = threading.Thread(target=asyncio.run, args=(loop(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _objects(server: str) -> None:
    async def make():
        async with ApiClient(server) as c:
            await c.create(to_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dr-n1"}}))
            ds = await c.create(to_object({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agentd"},
                "spec": {"selector": {"matchLabels": {"app": "agentd"}},
                         "template": {"metadata": {"labels": {"app": "agentd"}},
                                      # no node matches: the DaemonSet controller makes no pod of its own here
                                      "spec": {"nodeSelector": {"dr-test": "none"},
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}))
            pods = {
                "agentd-x": {"labels": {"app": "agentd"}, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agentd", "uid": ds.metadata.uid,
                     "controller": True}]},
                "scratch": {"volumes": [{"name": "tmp", "emptyDir": {}}]},
                "lonely": {},
            }
            for name, extra in pods.items():
                meta = {"name": name, "labels": extra.get("labels", {"app": name})}
                if "ownerReferences" in extra:
                    meta["ownerReferences"] = extra["ownerReferences"]
                spec = {"nodeName": "dr-n1", "containers": [{"name": "c", "image": "busybox"}],
                        "terminationGracePeriodSeconds": 30}
                if "volumes" in extra:
                    spec["volumes"] = extra["volumes"]
                await c.create(to_object({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}))
    asyncio.run(make())


def _pods(server: str) -> list[str]:
    async def names():
        async with ApiClient(server) as c:
            return sorted(p.metadata.name for p in (await c.list("Pod", "default"))[0])
    return asyncio.run(names())


def test_drain_refuses_then_evicts_as_kubectl(skiff, controlplane):
    _objects(controlplane)

    r = skiff("drain", "dr-n1", server=controlplane)
    assert r.returncode == 1
    assert r.stdout == "node/dr-n1 cordoned\n"
    lines = r.stderr.splitlines()
    assert lines[0].startswith('error: unable to drain node "dr-n1" due to error: [cannot delete ')
    assert lines[0].endswith(", continuing command...")
    for refusal in ("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/agentd-x",
                    "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/scratch",
                    "cannot delete Pods declare no controller (use --force to override): default/lonely"):
        assert refusal in lines[0], lines[0]
    assert lines[1:3] == ["There are pending nodes to be drained:", " dr-n1"]
    assert lines[3].startswith("error: [cannot delete ")
    assert _pods(controlplane) == ["agentd-x", "lonely", "scratch"]   # nothing evicted

    flags = ("--ignore-daemonsets", "--delete-emptydir-data", "--force")
    r = skiff("drain", "dr-n1", *flags, "--dry-run=client", server=controlplane)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["node/dr-n1 already cordoned (dry run)", "evicting pod default/lonely (dry run)",
                                     "evicting pod default/scratch (dry run)", "node/dr-n1 drained (dry run)"]
    # kubectl's own quirk: a later filter's status replaces an earlier warning (scratch: no controller).
    assert r.stderr == ("Warning: ignoring DaemonSet-managed Pods: default/agentd-x; deleting Pods that declare no "
                        "controller: default/lonely, default/scratch\n")

    with confirming_agent(controlplane):
        r = skiff("drain", "dr-n1", *flags, "--timeout", "60s", server=controlplane, timeout=90)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "node/dr-n1 already cordoned" and out[-1] == "node/dr-n1 drained"
    assert sorted(out[1:-1]) == ["evicting pod default/lonely", "evicting pod default/scratch",
                                 "pod/lonely evicted", "pod/scratch evicted"]
    # Gone (the DaemonSet's pod was never evicted: its own controller decides about it).
    assert not {"lonely", "scratch"} & set(_pods(controlplane))

    r = skiff("drain", "nope", server=controlplane)
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): nodes "nope" not found\n')
