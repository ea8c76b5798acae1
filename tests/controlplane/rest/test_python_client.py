"""Kubernetes' official Python client (`kubernetes` from PyPI) against Skiff's
REST front door: list/watch with resourceVersion resume, create/patch/delete,
errors as ApiException, a watch that meets compaction (410) and re-lists."""
from __future__ import annotations

import asyncio

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from controlplane.store import Store  # noqa: E402

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def core(rest) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(rest.kubeconfig)))


def pod(name: str, **labels: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels=labels or None),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))


def compact(rest) -> None:
    async def run() -> None:
        store = Store(endpoint=rest.info.etcd, root=rest.info.etcd_prefix)
        try:
            await store.compact(await store.revision())
        finally:
            await store.close()
    asyncio.run(run())


def test_create_list_patch_delete(rest):
    api = core(rest)
    created = api.create_namespaced_pod("default", pod("a", app="x"))
    assert created.metadata.uid and created.status.phase == "Pending"
    api.create_namespaced_pod("default", pod("b", app="y"))
    listed = api.list_namespaced_pod("default", label_selector="app=x")
    assert [p.metadata.name for p in listed.items] == ["a"]
    page = api.list_namespaced_pod("default", limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    rest_of_it = api.list_namespaced_pod("default", limit=1, _continue=page.metadata._continue)
    assert {page.items[0].metadata.name, rest_of_it.items[0].metadata.name} == {"a", "b"}

    patched = api.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"patched": "yes"}}})
    assert patched.metadata.labels == {"app": "x", "patched": "yes"}
    stale = api.read_namespaced_pod("a", "default")
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        api.replace_namespaced_pod("a", "default", stale)
    assert (conflict.value.status, conflict.value.reason) == (409, "Conflict")

    api.delete_namespaced_pod("a", "default")
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_pod("a", "default")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as exists:
        api.create_namespaced_pod("default", pod("b"))
    assert exists.value.status == 409


def test_watch_resumes_from_a_resource_version(rest):
    api = core(rest)
    api.create_namespaced_pod("default", pod("first"))
    rv = api.list_namespaced_pod("default").metadata.resource_version
    api.create_namespaced_pod("default", pod("second"))
    api.delete_namespaced_pod("first", "default")
    seen = []
    for event in watch.Watch().stream(api.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if seen[-1] == ("DELETED", "first"):
            break
    # From the list's revision on: "second" arrives, "first" goes; "first" is not added again.
    # (The scheduler's status writes may come between, as MODIFIED.)
    assert [e for e in seen if e[0] != "MODIFIED"] == [("ADDED", "second"), ("DELETED", "first")]


def test_watch_after_compaction_gets_410_and_relists(rest):
    api = core(rest)
    api.create_namespaced_pod("default", pod("old"))
    rv = api.list_namespaced_pod("default").metadata.resource_version
    api.create_namespaced_pod("default", pod("new"))
    api.delete_namespaced_pod("new", "default")
    api.create_namespaced_pod("default", pod("new"))
    compact(rest)   # at the current revision: the watch's starting point (rv + 1) is gone
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(api.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=5):
            pass
    assert gone.value.status == 410
    # What an informer does next: list again and watch from the list's revision.
    relisted = api.list_namespaced_pod("default")
    assert sorted(p.metadata.name for p in relisted.items) == ["new", "old"]
    api.create_namespaced_pod("default", pod("newer"))
    stream = watch.Watch().stream(api.list_namespaced_pod, "default",
                                  resource_version=relisted.metadata.resource_version, timeout_seconds=5)
    event = next(stream)
    assert (event["type"], event["object"].metadata.name) == ("ADDED", "newer")


def test_delete_collection_by_label(rest):
    api = core(rest)
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        api.create_namespaced_pod("default", pod(name, app=app))
    api.delete_collection_namespaced_pod("default", label_selector="app=x")
    assert [p.metadata.name for p in api.list_namespaced_pod("default").items] == ["c"]
