"""The Api service end to end: a real control plane process on a real etcd,
driven through skiff.client as the CLI and the agent drive it."""
import asyncio

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import AlreadyExists, ApiClient, ApiError, Conflict, Gone, Invalid, NotFound

pytestmark = pytest.mark.etcd


def pod(name: str, *, image: str = "busybox", labels: dict | None = None, memory: str = "") -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.labels.update(labels or {})
    c = p.spec.containers.add(name="c", image=image)
    if memory:
        c.resources.requests["memory"] = memory
    # Another scheduler's pod: the control plane's scheduler leaves it alone.
    p.spec.scheduler_name = "skiff-test-scheduler"
    return p


def run(address: str, body):
    async def main():
        async with ApiClient(address) as client:
            return await asyncio.wait_for(body(client), 60)
    return asyncio.run(main())


def test_apply_creates_then_reports_unchanged_then_configured(controlplane):
    async def body(c: ApiClient):
        created, result = await c.apply(pod("web"))
        assert result == "created"
        assert created.metadata.namespace == "default"
        assert created.metadata.uid and created.metadata.generation == 1
        assert created.metadata.HasField("creation_timestamp")
        assert created.status.phase == "Pending"
        same, result = await c.apply(pod("web"))
        assert result == "unchanged"
        assert same.metadata.resource_version == created.metadata.resource_version
        changed, result = await c.apply(pod("web", image="busybox:2", labels={"app": "web"}))
        assert result == "configured"
        assert changed.spec.containers[0].image == "busybox:2"
        assert changed.metadata.uid == created.metadata.uid
        assert changed.metadata.generation == 2
        got = await c.get("Pod", "web")
        assert got.metadata.labels["app"] == "web"
    run(controlplane, body)


def test_invalid_object_is_refused_with_its_field_path(controlplane):
    async def body(c: ApiClient):
        bad = pod("web")
        bad.spec.containers[0].resources.limits["memory"] = "12Gigs"
        with pytest.raises(Invalid) as err:
            await c.apply(bad)
        assert err.value.field_path == "spec.containers[0].resources.limits.memory"
        assert "12Gigs" in str(err.value)
        with pytest.raises(NotFound):
            await c.get("Pod", "web")
    run(controlplane, body)


def test_pod_spec_is_immutable_except_images(controlplane):
    async def body(c: ApiClient):
        await c.apply(pod("web"))
        changed = pod("web")
        changed.spec.containers[0].command.append("sleep")
        with pytest.raises(Invalid, match="pod updates may not change fields") as err:
            await c.apply(changed)
        assert err.value.field_path == "spec"
    run(controlplane, body)


def test_create_update_conflict_and_update_status(controlplane):
    async def body(c: ApiClient):
        first = await c.create(pod("p"))
        with pytest.raises(AlreadyExists):
            await c.create(pod("p"))
        one = await c.get("Pod", "p")
        one.metadata.labels["who"] = "one"
        await c.update(one)
        stale = meta.copy(first)
        stale.metadata.labels["who"] = "stale"
        with pytest.raises(Conflict):
            await c.update(stale)
        assert (await c.get("Pod", "p")).metadata.labels["who"] == "one"
        # update_status changes only the status; update never changes the status.
        current = await c.get("Pod", "p")
        current.status.phase = "Running"
        current.metadata.labels["who"] = "ignored"
        after = await c.update_status(current)
        assert after.status.phase == "Running" and after.metadata.labels["who"] == "one"
        after.status.phase = "Failed"
        final = await c.update(after)
        assert final.status.phase == "Running"
    run(controlplane, body)


def test_list_by_namespace_label_and_field_selector(controlplane):
    async def body(c: ApiClient):
        await c.apply(pod("a", labels={"app": "web"}))
        await c.apply(pod("b", labels={"app": "db"}))
        other = pod("c", labels={"app": "web"})
        other.metadata.namespace = "other"
        namespace = types_pb2.Namespace()
        namespace.metadata.name = "other"
        await c.apply(namespace)
        await c.apply(other)
        names = lambda items: sorted(i.metadata.name for i in items)  # noqa: E731
        items, rv = await c.list("Pod")
        assert names(items) == ["a", "b", "c"] and int(rv) > 0
        assert names((await c.list("Pod", namespace="default"))[0]) == ["a", "b"]
        assert names((await c.list("Pod", label_selector="app=web"))[0]) == ["a", "c"]
        assert names((await c.list("Pod", field_selector="metadata.name=b"))[0]) == ["b"]
        assert names((await c.list("Pod", field_selector="spec.nodeName="))[0]) == ["a", "b", "c"]
        with pytest.raises(Invalid, match="not supported"):
            await c.list("Pod", field_selector="spec.bogus=x")
    run(controlplane, body)


def test_list_in_pages_at_one_revision_and_the_errors_of_a_bad_token(controlplane):
    from controlplane.api.registry import encode_continue

    async def body(c: ApiClient):
        for name in "edcba":
            await c.create(pod(name))
        first, revision, token = await c.list_page("Pod", "default", limit=2)
        assert [p.metadata.name for p in first] == ["a", "b"] and token
        await c.create(pod("aa"))          # after the first page: not in this list
        await c.delete("Pod", "e", grace_period_seconds=0)
        second, again, token = await c.list_page("Pod", "default", limit=2, continue_=token)
        assert [p.metadata.name for p in second] == ["c", "d"] and again == revision
        last, _, token = await c.list_page("Pod", "default", limit=2, continue_=token)
        assert [p.metadata.name for p in last] == ["e"] and token == ""
        # The pager reads the current state, every page at its first page's revision.
        items, now = await c.list("Pod", "default", chunk_size=2)
        assert [p.metadata.name for p in items] == ["a", "aa", "b", "c", "d"] and int(now) > int(revision)

        with pytest.raises(Invalid) as bad:
            await c.list_page("Pod", limit=2, continue_="not-a-token")
        assert "continue key is not valid" in str(bad.value) and bad.value.field_path == "continue"
        with pytest.raises(Invalid) as both:
            await c.list_page("Pod", limit=2, continue_=encode_continue(revision, ("default", "b")),
                              resource_version=revision)
        assert both.value.field_path == "resourceVersion"
        with pytest.raises(Gone, match="continue parameter is too old"):
            await c.list_page("Pod", limit=2, continue_=encode_continue(1, ("default", "b")))
    run(controlplane, body)


def test_bind_then_graceful_delete_then_agent_confirms(controlplane):
    async def body(c: ApiClient):
        created = await c.create(pod("p"))
        bound = await c.bind("p", "node-1", resource_version=created.metadata.resource_version)
        assert bound.spec.node_name == "node-1"
        cond = meta.get_condition(bound.status.conditions, "PodScheduled")
        assert cond is not None and cond.status == "True"
        with pytest.raises(Conflict, match="already assigned"):
            await c.bind("p", "node-2")
        marked = await c.delete("Pod", "p")
        assert marked.metadata.HasField("deletion_timestamp")
        assert marked.metadata.deletion_grace_period_seconds == 30
        assert (await c.get("Pod", "p")).metadata.HasField("deletion_timestamp")
        # Not older than the mark (from the watch cache, once it has it), as kubelet reads.
        at_mark = await c.get("Pod", "p", resource_version=marked.metadata.resource_version)
        assert at_mark.metadata.resource_version == marked.metadata.resource_version
        assert (await c.get("Pod", "p", resource_version="0")).metadata.name == "p"
        await c.delete("Pod", "p", grace_period_seconds=0)  # the agent, once containers stopped
        with pytest.raises(NotFound):
            await c.get("Pod", "p")
        # An unbound pod goes at once.
        await c.create(pod("q"))
        await c.delete("Pod", "q")
        with pytest.raises(NotFound):
            await c.get("Pod", "q")
    run(controlplane, body)


def test_watch_initial_state_resume_and_selector_transitions(controlplane):
    async def body(c: ApiClient):
        await c.apply(pod("a", labels={"app": "web"}))
        stream = c.watch("Pod", label_selector="app=web")
        first = await stream.__anext__()
        assert first[0] == "ADDED" and first[1].metadata.name == "a"
        rv = first[2]
        await c.apply(pod("b", labels={"app": "web"}))
        await c.apply(pod("z", labels={"app": "other"}))  # never seen by this watcher
        a = await c.get("Pod", "a")
        a.metadata.labels["app"] = "db"  # leaves the selector: DELETED to this watcher
        await c.update(a)
        await c.delete("Pod", "b")
        seen = [(t, o.metadata.name) for t, o, _ in [await stream.__anext__() for _ in range(3)]]
        assert seen == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]
        await stream.aclose()
        # Resume from the first event's revision: the same three, in order.
        resumed = c.watch("Pod", label_selector="app=web", resource_version=rv)
        again = [(t, o.metadata.name) for t, o, _ in [await resumed.__anext__() for _ in range(3)]]
        assert again == seen
        await resumed.aclose()
    run(controlplane, body)


def test_watch_from_compacted_revision_is_gone(controlplane_info):
    from controlplane.store import Store

    async def body(c: ApiClient):
        created = await c.create(pod("a"))
        for i in range(3):
            cur = await c.get("Pod", "a")
            cur.metadata.labels["i"] = str(i)
            await c.update(cur)
        store = Store(endpoint=controlplane_info.etcd, root=controlplane_info.etcd_prefix)
        try:
            await store.compact(await store.revision())
        finally:
            await store.close()
        with pytest.raises(Gone):
            async for _ in c.watch("Pod", resource_version=str(int(created.metadata.resource_version) - 1)):
                pass
    run(controlplane_info.address, body)


def test_get_missing_and_unknown_kind(controlplane):
    async def body(c: ApiClient):
        with pytest.raises(NotFound, match='Pod "nope" in namespace "default" not found'):
            await c.get("Pod", "nope")
        with pytest.raises(ApiError, match="unknown kind"):
            await c.get("StatefulSet", "x")
    run(controlplane, body)


def test_logs_of_an_unscheduled_pod_say_so(controlplane):
    async def body(c: ApiClient):
        await c.create(pod("p"))
        with pytest.raises(ApiError, match="not scheduled"):
            async for _ in c.logs("p"):
                pass
    run(controlplane, body)


def test_status_without_resource_version_is_merged_not_refused(controlplane):
    """The agent writes status without a resourceVersion: it must land even if
    the object changed since the agent read it, and must not undo that change."""
    async def body(c: ApiClient):
        given = pod("p")
        given.status.phase = "Running"  # a user cannot create a pod "Running"
        created = await c.create(given)
        assert created.status.phase == "Pending"
        other = await c.get("Pod", "p")
        other.metadata.labels["changed"] = "meanwhile"
        await c.update(other)
        status_only = meta.copy(created)
        status_only.metadata.resource_version = ""
        status_only.status.phase = "Running"
        after = await c.update_status(status_only)
        assert after.status.phase == "Running"
        assert after.metadata.labels["changed"] == "meanwhile"
    run(controlplane, body)


def test_agent_view_watch_by_node_name_sees_bind_terminate_and_removal(controlplane):
    """What an agent watching `spec.nodeName=node-1` receives over a pod's life."""
    async def body(c: ApiClient):
        _, rv = await c.list("Pod", field_selector="spec.nodeName=node-1")
        stream = c.watch("Pod", field_selector="spec.nodeName=node-1", resource_version=rv)
        await c.create(pod("p"))                      # unbound: not this node's business
        await c.bind("p", "node-1")                   # now it is: ADDED
        await c.delete("Pod", "p")                    # graceful: MODIFIED with deletionTimestamp
        await c.delete("Pod", "p", grace_period_seconds=0)  # the agent confirms: DELETED
        events = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()
        assert [(t, o.metadata.name) for t, o, _ in events] == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
        assert events[1][1].metadata.HasField("deletion_timestamp")
        assert int(events[0][2]) < int(events[1][2]) < int(events[2][2])
    run(controlplane, body)
