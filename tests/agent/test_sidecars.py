"""Native sidecars (init containers with restartPolicy Always) over the fake
runtime: started in order before the app containers and kept running, the pod
Initialized once they have started, restarted on their own without touching
the app (and outliving its restarts), stopped after the app containers."""
from __future__ import annotations

import asyncio

from agent.runtime.interface import State
from skiff.api.kinds.pod import pod_ready, pod_status
from tests.agent.test_podworkers import World


def _pod(w: World, name: str, restart_policy: str = "Always") -> str:
    uid = w.api.add_pod(name, restart_policy=restart_policy,
                        init=[{"name": "setup"}, {"name": "proxy"}]).metadata.uid
    w.api.pods[("default", name)].spec.init_containers[1].restart_policy = "Always"
    return uid


def test_sidecar_starts_before_the_app_and_outlives_its_restarts(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = _pod(w, "web")
        await w.workers.reconcile(uid)
        w.runtime.exit(w.current(uid, "setup").id, 0)
        await w.workers.reconcile(uid)          # setup done: the sidecar starts, then (started) the app
        proxy = w.current(uid, "proxy")
        starts = [c[1] for c in w.runtime.calls if c[0] == "start"]
        assert starts == [w.current(uid, "setup").id, proxy.id, w.current(uid, "main").id]
        pod = w.api.pod("web")
        assert w.current(uid, "main").state is State.RUNNING
        assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"
        assert (pod_status(pod), pod_ready(pod)) == ("Running", "2/2")
        # The app restarts; the sidecar stays the same process.
        w.runtime.exit(w.current(uid, "main").id, 1)
        await w.workers.reconcile(uid)
        assert w.current(uid, "main").id.endswith("-1") and w.current(uid, "proxy").id == proxy.id
        # The sidecar dies: it alone is restarted, the app is untouched.
        main = w.current(uid, "main").id
        w.runtime.exit(proxy.id, 2)
        await w.workers.reconcile(uid)
        assert w.current(uid, "proxy").id.endswith("-1") and w.current(uid, "main").id == main
        assert [c.name for c in w.api.pod("web").status.init_container_statuses] == ["setup", "proxy"]
        # Deleting: the app container is stopped before the sidecar.
        w.api.mark_deleted("web", grace=5)
        await w.workers.reconcile(uid)
        stops = [c[1] for c in w.runtime.calls if c[0] == "stop"]
        assert stops.index(main) < max(i for i, cid in enumerate(stops) if cid.startswith(proxy.id[:16]))
    asyncio.run(scenario())


def test_a_finished_app_ends_the_pod_and_its_sidecar(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = _pod(w, "job", restart_policy="Never")
        await w.workers.reconcile(uid)
        w.runtime.exit(w.current(uid, "setup").id, 0)
        await w.workers.reconcile(uid)
        proxy = w.current(uid, "proxy").id
        w.runtime.exit(w.current(uid, "main").id, 0)
        await w.workers.reconcile(uid)
        assert w.api.pod("job").status.phase == "Succeeded"
        assert ("stop", proxy) in w.runtime.calls and w.runtime.containers == {}
    asyncio.run(scenario())
