"""The Controller base: enqueue → process_next → reconcile(key); back-off on errors,
requeue-after, PermanentError as a Warning Event without a hot retry, owners enqueued
from their dependents."""
import asyncio

from proto.skiff.v1 import types_pb2
from skiff.client import Unavailable
from skiff.controller import Controller, Informer, PermanentError
from skiff.retry import Backoff


class StaticClient:
    """A list that never changes and a watch that stays quiet."""

    def __init__(self, items):
        self.items = items

    async def list(self, kind, namespace="", label_selector="", field_selector=""):
        return list(self.items), "1"

    async def watch(self, kind, namespace="", label_selector="", field_selector="", resource_version="",
                    bookmarks=False):
        await asyncio.Event().wait()
        yield  # pragma: no cover


def pod(name, *, owner=None, owner_uid="o"):
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    if owner:
        p.metadata.owner_references.add(kind=owner[0], name=owner[1], uid=owner_uid, controller=True)
    return p


class Recorder:
    def __init__(self):
        self.events = []

    async def record(self, obj, *, type_, reason, message):
        self.events.append((obj.metadata.name, type_, reason, message))


class Scripted(Controller):
    name = "scripted"

    def __init__(self, informer, outcomes, **kw):
        super().__init__(backoff=Backoff(initial=0.01, maximum=0.02, jitter=False), **kw)
        self.pods = self.watch(informer)
        self.outcomes = outcomes
        self.calls = []

    async def reconcile(self, key):
        self.calls.append(key[1])
        outcome = self.outcomes.get(key[1], [None])
        step = outcome.pop(0) if len(outcome) > 1 else outcome[0]
        if isinstance(step, Exception):
            raise step
        return step


async def until(check, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


def test_transient_errors_retry_with_back_off_then_forget():
    async def body():
        informer = Informer(StaticClient([pod("flaky"), pod("fine")]), "Pod")
        c = Scripted(informer, {"flaky": [Unavailable("etcd down"), Unavailable("again"), None]})
        task = asyncio.ensure_future(c.run())
        try:
            await until(lambda: c.calls.count("flaky") == 3)
            await asyncio.sleep(0.05)
            assert c.calls.count("flaky") == 3 and c.calls.count("fine") == 1
            assert c.queue.num_requeues(("default", "flaky")) == 0   # forgotten after success
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informer.stop()
    asyncio.run(asyncio.wait_for(body(), 10))


def test_permanent_error_is_a_warning_event_and_not_retried():
    async def body():
        informer = Informer(StaticClient([pod("bad")]), "Pod")
        recorder = Recorder()

        class Strict(Scripted):
            async def reconcile(self, key):
                self.calls.append(key[1])
                raise PermanentError("spec.replicas: must be >= 0", obj=self.pods.get(key), reason="InvalidSpec")

        c = Strict(informer, {}, recorder=recorder)
        task = asyncio.ensure_future(c.run())
        try:
            await until(lambda: recorder.events)
            await asyncio.sleep(0.1)
            assert c.calls == ["bad"]
            assert recorder.events == [("bad", "Warning", "InvalidSpec", "spec.replicas: must be >= 0")]
            c.enqueue(("default", "bad"))   # the object changed: looked at again
            await until(lambda: len(c.calls) == 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informer.stop()
    asyncio.run(asyncio.wait_for(body(), 10))


def test_reconcile_returning_seconds_requeues_after_them():
    async def body():
        informer = Informer(StaticClient([pod("poll")]), "Pod")
        c = Scripted(informer, {"poll": [0.02, 0.02, None]})
        task = asyncio.ensure_future(c.run())
        try:
            await until(lambda: len(c.calls) == 3)
            await asyncio.sleep(0.06)
            assert len(c.calls) == 3
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informer.stop()
    asyncio.run(asyncio.wait_for(body(), 10))


def test_dependents_enqueue_their_controlling_owner():
    async def body():
        pods = Informer(StaticClient([pod("web-1", owner=("ReplicaSet", "web")),
                                      pod("stale-1", owner=("ReplicaSet", "stale"), owner_uid="gone"),
                                      pod("other", owner=("Job", "j")), pod("lone")]), "Pod")
        web, stale = pod("web"), pod("stale")
        web.metadata.uid = stale.metadata.uid = "o"
        owners = Informer(StaticClient([web, stale]), "Pod")

        class Owners(Controller):
            name = "owners"

            def __init__(self):
                super().__init__()
                self.uses(owners)
                self.watch_dependents(pods, owner_kind="ReplicaSet", owners=owners)
                self.seen = []

            async def reconcile(self, key):
                self.seen.append(key)

        c = Owners()
        owners.start()
        await owners.wait_synced()   # (else a dependent may be seen before its owner is cached)
        task = asyncio.ensure_future(c.run())
        try:
            await until(lambda: c.seen)
            await asyncio.sleep(0.05)
            assert c.seen == [("default", "web")]     # not the owner whose uid no longer matches
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pods.stop()
            await owners.stop()
    asyncio.run(asyncio.wait_for(body(), 10))


def test_a_worker_per_key_mode_runs_slow_keys_side_by_side():
    async def body():
        informer = Informer(StaticClient([pod("a"), pod("b")]), "Pod")
        running = set()
        overlap = []

        class Slow(Controller):
            name = "slow"
            workers = None

            def __init__(self):
                super().__init__()
                self.watch(informer)

            async def reconcile(self, key):
                running.add(key)
                overlap.append(len(running))
                await asyncio.sleep(0.05)
                running.discard(key)

        c = Slow()
        task = asyncio.ensure_future(c.run())
        try:
            await until(lambda: len(overlap) == 2)
            assert max(overlap) == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informer.stop()
    asyncio.run(asyncio.wait_for(body(), 10))
