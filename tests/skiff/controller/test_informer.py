"""Informer and SharedInformerFactory against scripted clients: re-list on Gone, on a
broken stream and after silence (a stall is counted and logged), handlers with keys
that never block the cache, and one informer per kind and selectors per factory."""
import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from proto.skiff.v1 import types_pb2
from skiff.client import Gone, Unavailable
from skiff.controller import ControllerMetrics, EventHandler, Informer, SharedInformerFactory
from skiff.retry import Backoff

FAST = Backoff(initial=0.01, maximum=0.02)


def pod(name: str, rv: str, node: str = "", **labels: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.resource_version = name, "default", rv
    p.metadata.labels.update(labels)
    p.spec.node_name = node
    return p


class ScriptedClient:
    """list answers from `lists` in turn (the last one repeats); each watch runs
    the next script: a list of events, then an exception to raise or "hang"."""

    def __init__(self, lists, watches):
        self.lists, self.watches = list(lists), list(watches)
        self.list_calls = self.watch_calls = 0
        self.watch_args = []

    async def list(self, kind, namespace="", label_selector="", field_selector=""):
        self.list_calls += 1
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]

    async def watch(self, kind, namespace="", label_selector="", field_selector="", resource_version="",
                    bookmarks=False):
        self.watch_calls += 1
        self.watch_args.append(resource_version)
        self.bookmarks = bookmarks
        script = self.watches.pop(0) if self.watches else ["hang"]
        for step in script:
            if step == "hang":
                await asyncio.Event().wait()
            elif isinstance(step, asyncio.Event):   # a gate the test opens
                await step.wait()
            elif isinstance(step, Exception):
                raise step
            else:
                yield step


async def until(check, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def recorder(informer):
    seen = []
    informer.add_event_handler(EventHandler(
        on_add=lambda key, obj: seen.append(("add", key[1], obj.metadata.resource_version)),
        on_update=lambda key, old, new: seen.append(("update", key[1], new.metadata.resource_version)),
        on_delete=lambda key, old: seen.append(("delete", key[1], old.metadata.resource_version))))
    return seen


def test_list_then_watch_feeds_cache_and_handlers_with_keys():
    async def body():
        client = ScriptedClient(
            lists=[([pod("a", "1")], "1")],
            watches=[[("ADDED", pod("b", "2"), "2"), ("MODIFIED", pod("a", "3"), "3"),
                      ("BOOKMARK", None, "4"), ("DELETED", pod("b", "5"), "5"), "hang"]])
        informer = Informer(client, "Pod", backoff=FAST)
        seen = recorder(informer)
        keys = []
        informer.add_handler(keys.append)
        informer.start()
        try:
            await informer.wait_synced()
            await until(lambda: len(seen) == 4)
        finally:
            await informer.stop()
        assert seen == [("add", "a", "1"), ("add", "b", "2"), ("update", "a", "3"), ("delete", "b", "2")]
        assert keys == [("default", "a"), ("default", "b"), ("default", "a"), ("default", "b")]
        assert informer.keys() == [("default", "a")] and informer.resource_version == "5"
        assert client.watch_args == ["1"]
        assert client.bookmarks   # asked for: an idle watch's revision keeps moving
    run(body())


def test_relist_on_gone_notices_what_changed_meanwhile():
    async def body():
        client = ScriptedClient(
            lists=[([pod("a", "1"), pod("b", "2")], "2"), ([pod("a", "5"), pod("c", "6")], "6")],
            watches=[[Gone("compacted")]])
        registry = CollectorRegistry()
        informer = Informer(client, "Pod", backoff=FAST, metrics=ControllerMetrics(registry))
        seen = recorder(informer)
        informer.start()
        try:
            await until(lambda: client.watch_calls >= 2)
        finally:
            await informer.stop()
        assert sorted(k[1] for k in informer.keys()) == ["a", "c"]
        assert seen[:2] == [("add", "a", "1"), ("add", "b", "2")]
        assert sorted(seen[2:]) == [("add", "c", "6"), ("delete", "b", "2"), ("update", "a", "5")]
        assert client.watch_args == ["2", "6"]
        assert registry.get_sample_value("skiff_informer_relists_total", {"kind": "Pod", "reason": "gone"}) == 1
    run(body())


def test_a_broken_stream_is_relisted_after_back_off():
    async def body():
        client = ScriptedClient(
            lists=[([pod("a", "1")], "1"), ([], "9")],
            watches=[[("MODIFIED", pod("a", "2"), "2"), Unavailable("connection reset")]])
        registry = CollectorRegistry()
        informer = Informer(client, "Pod", backoff=FAST, metrics=ControllerMetrics(registry))
        informer.start()
        try:
            await until(lambda: client.watch_calls >= 2)
        finally:
            await informer.stop()
        assert informer.keys() == [] and client.watch_args == ["1", "9"]
        assert registry.get_sample_value("skiff_informer_relists_total", {"kind": "Pod", "reason": "error"}) == 1
    run(body())


def test_repeated_unavailable_from_one_revision_relists_each_time_and_recovers():
    """Issue 15: a watcher that falls behind (the server answers UNAVAILABLE
    again and again from its revision) does not retry that revision forever:
    every failure is followed by a fresh list, and the watch resumes from the
    list's revision and delivers."""
    async def body():
        down = [[Unavailable("etcd unreachable")] for _ in range(4)]
        client = ScriptedClient(
            lists=[([pod("a", "1")], "1")] * 5 + [([pod("a", "1"), pod("b", "12")], "12")],
            watches=[*down, [Unavailable("etcd unreachable")], [("ADDED", pod("c", "13"), "13"), "hang"]])
        registry = CollectorRegistry()
        informer = Informer(client, "Pod", backoff=FAST, metrics=ControllerMetrics(registry))
        informer.start()
        try:
            await until(lambda: informer.get(("default", "c")) is not None)
        finally:
            await informer.stop()
        assert sorted(k[1] for k in informer.keys()) == ["a", "b", "c"]
        assert client.list_calls == 6 and client.watch_args == ["1"] * 5 + ["12"]
        assert registry.get_sample_value("skiff_informer_relists_total", {"kind": "Pod", "reason": "error"}) == 5
    run(body())


def test_a_silent_watch_is_relisted_and_a_stall_is_counted_and_logged(caplog):
    async def body():
        # The watch delivers nothing while the object changed: the re-list finds it.
        client = ScriptedClient(lists=[([pod("a", "1")], "1"), ([pod("a", "7")], "7"), ([pod("a", "7")], "8")],
                                watches=[["hang"], ["hang"], ["hang"]])
        registry = CollectorRegistry()
        informer = Informer(client, "Pod", backoff=FAST, resync_seconds=0.05, metrics=ControllerMetrics(registry))
        seen = recorder(informer)
        informer.start()
        try:
            await until(lambda: client.list_calls >= 3)
        finally:
            await informer.stop()
        assert seen == [("add", "a", "1"), ("update", "a", "7")]
        value = registry.get_sample_value
        assert value("skiff_informer_relists_total", {"kind": "Pod", "reason": "silent"}) >= 2
        assert value("skiff_informer_stalls_total", {"kind": "Pod"}) == 1   # only the one that found a change
        assert value("skiff_informer_last_event_timestamp_seconds", {"kind": "Pod"}) > 0
    with caplog.at_level(logging.WARNING, logger="skiff.controller.informer"):
        run(body())
    assert any("watch was stalled" in r.getMessage() for r in caplog.records)


def test_a_failing_handler_does_not_stop_the_cache_and_async_handlers_are_refused():
    async def body():
        client = ScriptedClient(lists=[([pod("a", "1")], "1")],
                                watches=[[("ADDED", pod("b", "2"), "2"), "hang"]])
        informer = Informer(client, "Pod", backoff=FAST)

        def broken(key):
            raise RuntimeError("boom")

        informer.add_handler(broken)
        later = []
        informer.add_handler(later.append)

        async def blocking(key):
            pass
        with pytest.raises(TypeError, match="must not block"):
            informer.add_handler(blocking)
        informer.start()
        try:
            await until(lambda: len(later) == 2)
        finally:
            await informer.stop()
        assert len(informer.keys()) == 2
    run(body())


def test_a_handler_added_after_sync_hears_the_cached_objects():
    async def body():
        client = ScriptedClient(lists=[([pod("a", "1"), pod("b", "2")], "2")], watches=[["hang"]])
        informer = Informer(client, "Pod")
        informer.start()
        try:
            await informer.wait_synced()
            late = []
            informer.add_handler(late.append)
            assert sorted(late) == [("default", "a"), ("default", "b")]
        finally:
            await informer.stop()
    run(body())


def test_lister_indexes_follow_updates_and_deletes():
    async def body():
        owned = pod("child", "3", node="n1", app="web")
        owned.metadata.owner_references.add(kind="ReplicaSet", name="rs", uid="u-1", controller=True)
        gate = asyncio.Event()
        client = ScriptedClient(
            lists=[([pod("a", "1", node="n1", app="web"), pod("b", "2", node="n2", app="db"), owned], "3")],
            watches=[[gate, ("MODIFIED", pod("a", "4", node="n2", app="db"), "4"),
                      ("DELETED", pod("b", "5", node="n2", app="db"), "5"), "hang"]])
        informer = Informer(client, "Pod")
        lister = informer.lister
        informer.start()
        try:
            await informer.wait_synced()
            assert [p.metadata.name for p in lister.on_node("n1")] == ["a", "child"]
            assert [p.metadata.name for p in lister.with_label("app", "web")] == ["a", "child"]
            assert [p.metadata.name for p in lister.owned_by("u-1")] == ["child"]
            gate.set()
            await until(lambda: len(lister) == 2)
            assert [p.metadata.name for p in lister.on_node("n2")] == ["a"]
            assert [p.metadata.name for p in lister.on_node("n1")] == ["child"]
            assert [p.metadata.name for p in lister.list(label_selector="app in (db)")] == ["a"]
            assert [p.metadata.name for p in lister.list("default")] == ["a", "child"]
            assert lister.list("other") == []
            assert lister.get(("default", "a")).metadata.resource_version == "4"
        finally:
            await informer.stop()
    run(body())


def test_factory_shares_one_informer_per_kind_and_selectors():
    async def body():
        client = ScriptedClient(lists=[([pod("a", "1")], "1")], watches=[["hang"]] * 3)
        factory = SharedInformerFactory(client)
        pods = factory.informer("Pod")
        assert factory.informer("pods") is pods and factory.informer("po") is pods
        mine = factory.informer("Pod", field_selector="spec.nodeName=n1")
        assert mine is not pods
        nodes = factory.informer("Node")
        assert len(factory.informers) == 3
        factory.start()
        factory.start()   # idempotent
        try:
            await asyncio.wait_for(factory.wait_synced(), 5)
            assert client.list_calls == 3
            assert factory.lister("Pod").get(("default", "a")) is not None and nodes.synced
        finally:
            await factory.stop()
        assert not pods.running
    run(body())


def test_an_informer_failing_past_the_bound_says_why_until_its_watch_delivers():
    """Readiness (issue 15): problem(bound) names the informer and the error once it
    has failed longer than the bound; a working watch clears it."""
    class Flaky(ScriptedClient):
        down = True

        async def list(self, kind, namespace="", label_selector="", field_selector=""):
            if self.down:
                raise Unavailable("etcd at 127.0.0.1:1 unreachable")
            return await super().list(kind, namespace, label_selector, field_selector)

    async def body():
        client = Flaky(lists=[([pod("a", "1")], "1")], watches=[[("ADDED", pod("b", "2"), "2"), "hang"]])
        factory = SharedInformerFactory(client, backoff=FAST, metrics=ControllerMetrics(CollectorRegistry()))
        informer = factory.informer("Pod")
        assert factory.problems(0.0) == []          # not started: nothing failed
        factory.start()
        try:
            await until(lambda: factory.problems(0.05) != [])
            [problem] = factory.problems(0.05)
            assert "Pod" in problem and "etcd at 127.0.0.1:1 unreachable" in problem, problem
            assert factory.problems(3600) == []       # failing, but not yet past that bound
            client.down = False
            await until(lambda: informer.get(("default", "b")) is not None)
            assert factory.problems(0.0) == []
        finally:
            await factory.stop()
    run(body())


def test_a_stall_is_a_problem_until_the_watch_delivers_again():
    async def body():
        gate = asyncio.Event()
        client = ScriptedClient(lists=[([pod("a", "1")], "1"), ([pod("a", "7")], "7")],
                                watches=[["hang"], [gate, ("ADDED", pod("b", "8"), "8"), "hang"]])
        informer = Informer(client, "Pod", backoff=FAST, resync_seconds=0.05,
                            metrics=ControllerMetrics(CollectorRegistry()))
        informer.start()
        try:
            await until(lambda: informer.problem(3600) is not None)
            assert "stalled" in informer.problem(3600) and "1 change(s)" in informer.problem(3600)
            gate.set()
            await until(lambda: informer.get(("default", "b")) is not None)
            assert informer.problem(0.0) is None
        finally:
            await informer.stop()
    run(body())


def test_a_transform_decides_what_the_cache_keeps_of_listed_and_watched_objects():
    def names_and_labels(p):   # as client-go's SetTransform: drop what no reader needs
        kept = types_pb2.Pod()
        kept.metadata.name, kept.metadata.namespace = p.metadata.name, p.metadata.namespace
        kept.metadata.resource_version = p.metadata.resource_version
        kept.metadata.labels.update(p.metadata.labels)
        return kept

    async def body():
        client = ScriptedClient(lists=[([pod("a", "1", node="n1", app="web")], "1")],
                                watches=[[("ADDED", pod("b", "2", node="n2", app="db"), "2"), "hang"]])
        factory = SharedInformerFactory(client, backoff=FAST)
        trimmed = factory.informer("Pod", transform=names_and_labels)
        assert factory.informer("Pod", transform=names_and_labels) is trimmed
        assert factory.informer("Pod") is not trimmed   # a reader of whole objects gets its own
        seen = recorder(trimmed)
        trimmed.start()
        try:
            await trimmed.wait_synced()
            await until(lambda: len(seen) == 2)
        finally:
            await trimmed.stop()
        cached = sorted(trimmed.list(), key=lambda p: p.metadata.name)
        assert [(p.metadata.name, dict(p.metadata.labels), p.spec.node_name) for p in cached] == \
            [("a", {"app": "web"}, ""), ("b", {"app": "db"}, "")]
        assert seen == [("add", "a", "1"), ("add", "b", "2")]
    run(body())
