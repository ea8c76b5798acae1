"""Logs, Exec and Stats pass through the control plane to the pod's agent.
The agent here is a small stand-in Agent service on loopback (the real one is
agent/server.py's); the control plane and etcd are real."""
import asyncio

import grpc
import pytest

from proto.skiff.v1 import api_pb2, api_pb2_grpc, types_pb2
from skiff.client import ApiClient, ApiError, NotFound

pytestmark = pytest.mark.etcd


class StandInAgent(api_pb2_grpc.AgentServicer):
    async def Logs(self, request, context):
        if request.container == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, f'container "missing" not found in pod "{request.name}"')
        for line in (f"{request.namespace}/{request.name}\n", f"tail={request.tail_lines}\n"):
            yield api_pb2.LogChunk(data=line.encode())

    async def Exec(self, request_iterator, context):
        start = None
        received = b""
        async for message in request_iterator:
            which = message.WhichOneof("input")
            if which == "start":
                start = message.start
            elif which == "stdin":
                received += message.stdin
            elif which == "close_stdin":
                break
        yield api_pb2.ExecOutput(stdout=" ".join(start.command).encode())
        yield api_pb2.ExecOutput(stderr=received.upper())
        yield api_pb2.ExecOutput(exit_code=3)

    async def Stats(self, request, context):
        return api_pb2.NodeStats(node_name=request.node_name, memory_working_set_bytes=42)


def test_logs_exec_and_stats_reach_the_agent(controlplane):
    async def body():
        server = grpc.aio.server()
        api_pb2_grpc.add_AgentServicer_to_server(StandInAgent(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with ApiClient(controlplane) as c:
                node = types_pb2.Node()
                node.metadata.name = "node-1"
                node.status.addresses.add(type="InternalIP", address="127.0.0.1")
                node.status.daemon_endpoints.kubelet_endpoint.port = port
                await c.create(node)
                p = types_pb2.Pod()
                p.metadata.name = "web"
                p.spec.containers.add(name="c", image="busybox")
                p.spec.scheduler_name = "skiff-test-scheduler"
                await c.create(p)
                await c.bind("web", "node-1")

                chunks = [chunk async for chunk in c.logs("web", tail_lines=5)]
                assert b"".join(chunks) == b"default/web\ntail=5\n"
                with pytest.raises(NotFound, match='container "missing" not found'):
                    async for _ in c.logs("web", container="missing"):
                        pass

                async def stdin():
                    yield b"hello "
                    yield b"world"
                outputs = [o async for o in c.exec("web", ["echo", "hi"], stdin=stdin())]
                assert outputs == [("stdout", b"echo hi"), ("stderr", b"HELLO WORLD"), ("exit_code", 3)]

                stats = await c.stats("node-1")
                assert (stats.node_name, stats.memory_working_set_bytes) == ("node-1", 42)
        finally:
            await server.stop(0)
    asyncio.run(asyncio.wait_for(body(), 60))


def test_unreachable_agent_is_named(controlplane, unused_port):
    async def body():
        async with ApiClient(controlplane) as c:
            node = types_pb2.Node()
            node.metadata.name = "node-1"
            node.status.addresses.add(type="InternalIP", address="127.0.0.1")
            node.status.daemon_endpoints.kubelet_endpoint.port = unused_port
            await c.create(node)
            with pytest.raises(ApiError, match=f"cannot reach the node agent at 127.0.0.1:{unused_port}"):
                await c.stats("node-1")
    asyncio.run(asyncio.wait_for(body(), 60))
