"""skiff.client: error mapping, and an informer (skiff.controller) following a real
control plane (its re-list logic against scripted clients is in tests/skiff/controller/)."""
import asyncio

import grpc
import pytest

from proto.skiff.v1 import api_pb2, types_pb2
from skiff.client import ApiClient, ApiError, Unavailable
from skiff.controller import Informer


def pod(name: str, **labels: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="c", image="busybox")
    p.spec.scheduler_name = "skiff-test-scheduler"  # keep the real scheduler out of it
    return p


def test_unreachable_api_names_the_address(unused_port):
    port = unused_port

    async def body():
        async with ApiClient(f"127.0.0.1:{port}") as c:
            with pytest.raises(Unavailable) as err:
                await c.get("Pod", "x", timeout=10)
            return str(err.value)
    assert asyncio.run(body()) == f"cannot reach the Skiff API at 127.0.0.1:{port}: connection refused"


@pytest.mark.etcd
def test_informer_follows_adds_updates_and_deletes(controlplane):
    async def body():
        async with ApiClient(controlplane) as c:
            await c.create(pod("before", app="web"))
            informer = Informer(c, "Pod", label_selector="app=web")
            seen: asyncio.Queue = asyncio.Queue()

            def handler(key):
                obj = informer.get(key)
                seen.put_nowait((key, None if obj is None else obj.metadata.labels.get("v", "")))
            informer.add_handler(handler)
            informer.start()
            try:
                await asyncio.wait_for(informer.wait_synced(), 20)
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "before"), "")
                await c.create(pod("after", app="web"))
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "after"), "")
                cur = await c.get("Pod", "after")
                cur.metadata.labels["v"] = "2"
                await c.update(cur)
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "after"), "2")
                await c.delete("Pod", "before")
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "before"), None)
                assert sorted(k[1] for k in informer.keys()) == ["after"]
            finally:
                await informer.stop()
    asyncio.run(body())


@pytest.mark.etcd
def test_informer_survives_a_control_plane_restart(controlplane_factory):
    """The agent's situation: the control plane goes away and comes back on the
    same address; what changed meanwhile reaches the cache."""
    first = controlplane_factory()
    port = int(first.address.rsplit(":", 1)[1])

    async def body():
        async with ApiClient(first.address) as c:
            await c.create(pod("one"))
            informer = Informer(c, "Pod")
            informer.start()
            try:
                await asyncio.wait_for(informer.wait_synced(), 20)
                assert [k[1] for k in informer.keys()] == ["one"]
                await asyncio.to_thread(controlplane_factory.stop, first)
                second = await asyncio.to_thread(controlplane_factory, api_port=port)
                async with ApiClient(second.address) as other:
                    await other.create(pod("two"))
                    await other.delete("Pod", "one")
                for _ in range(400):
                    if sorted(k[1] for k in informer.keys()) == ["two"]:
                        break
                    await asyncio.sleep(0.05)
                assert sorted(k[1] for k in informer.keys()) == ["two"]
            finally:
                await informer.stop()
    asyncio.run(body())


class _EndedCall:
    """A stream call that delivers `outputs`, then fails as gRPC's asyncio client does when
    the server ended the stream during a client write (grpc/grpc#36066): INTERNAL in place of
    the server's status."""

    def __init__(self, requests, outputs, details="Internal error from Core"):
        self.requests, self.outputs, self.details = requests, outputs, details

    async def __aiter__(self):
        async for _ in self.requests:      # the client's writes; the last one "fails"
            break
        for out in self.outputs:
            yield out
        raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                   details=self.details)

    def cancel(self):
        return True


def _stub(**methods):
    return type("Stub", (), {name: staticmethod(fn) for name, fn in methods.items()})()


def test_a_stream_the_server_ended_during_a_write_is_over_not_an_error(unused_port):
    """`skiff port-forward` printed "error: forwarding to port 8080: Internal error from Core"
    after a connection that had worked (CI, tests/e2e/test_port_forward.py): the pod closed the
    connection as the client sent its end. The bytes arrived, the connection is over."""
    async def data():
        yield b"GET / HTTP/1.0\r\n\r\n"

    async def body():
        async with ApiClient(f"127.0.0.1:{unused_port}") as c:
            c._stub = _stub(PortForward=lambda requests: _EndedCall(requests, [
                api_pb2.PortForwardOutput(connected=True),
                api_pb2.PortForwardOutput(data=b"HTTP/1.0 200 OK\r\n\r\nweb\n")]))
            forwarded = [chunk async for chunk in c.port_forward("web", 8080, data=data())]
            c._stub = _stub(Exec=lambda requests: _EndedCall(requests, [
                api_pb2.ExecOutput(stdout=b"x"), api_pb2.ExecOutput(exit_code=0)]))
            executed = [item async for item in c.exec("web", ["head", "-c1"], stdin=data())]
            # Before any answer it is an error still: a refusal's status may be what was lost.
            c._stub = _stub(PortForward=lambda requests: _EndedCall(requests, []))
            with pytest.raises(ApiError) as refused:
                [chunk async for chunk in c.port_forward("web", 8080, data=data())]
            # And another INTERNAL is not mistaken for it.
            c._stub = _stub(PortForward=lambda requests: _EndedCall(requests, [
                api_pb2.PortForwardOutput(connected=True), api_pb2.PortForwardOutput(data=b"x")],
                details="agent crashed"))
            with pytest.raises(ApiError) as crashed:
                [chunk async for chunk in c.port_forward("web", 8080, data=data())]
            return forwarded, executed, refused.value.message, crashed.value.message
    forwarded, executed, refused, crashed = asyncio.run(body())
    assert forwarded == [b"HTTP/1.0 200 OK\r\n\r\nweb\n"]
    assert executed == [("stdout", b"x"), ("exit_code", 0)]
    assert refused == "Internal error from Core"
    assert crashed == "agent crashed"


class _RefusingCall:
    """An agent that cannot reach the port: it reads `start`, then ends the stream with its
    status. What the client wrote before that is kept in `sent`."""

    def __init__(self, requests):
        self.requests, self.sent = aiter(requests), []

    async def __aiter__(self):
        self.sent.append(await anext(self.requests))
        try:   # whatever the client sends unasked would race the status in real gRPC
            self.sent.append(await asyncio.wait_for(anext(self.requests), 0.5))
        except asyncio.TimeoutError:
            pass
        raise grpc.aio.AioRpcError(grpc.StatusCode.FAILED_PRECONDITION, grpc.aio.Metadata(),
                                   grpc.aio.Metadata(), details="connect to 127.0.0.1:8081 in the pod: "
                                                                "connection refused")
        yield  # an async generator

    def cancel(self):
        return True


def test_port_forward_sends_no_data_before_the_agent_has_connected(unused_port):
    """kubectl port-forward to a refused port printed "Internal error from Core" (CI): data
    sent while the agent was ending the stream lost its status. The client waits for the
    agent's `connected`, so the refusal is what it hears."""
    async def data():
        yield b"GET / HTTP/1.0\r\n\r\n"

    async def body():
        calls = []

        def refusing(requests):
            calls.append(_RefusingCall(requests))
            return calls[-1]
        async with ApiClient(f"127.0.0.1:{unused_port}") as c:
            c._stub = _stub(PortForward=refusing)
            with pytest.raises(ApiError) as refused:
                [chunk async for chunk in c.port_forward("web", 8081, data=data())]
        return refused.value, calls[0].sent
    error, sent = asyncio.run(body())
    assert "connection refused" in error.message
    assert [m.WhichOneof("input") for m in sent] == ["start"]
