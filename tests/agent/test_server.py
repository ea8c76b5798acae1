"""The Agent gRPC service (Logs, Exec, PortForward, Stats) over real gRPC on loopback, FakeRuntime behind it."""
from __future__ import annotations

import asyncio
import os

import grpc
import pytest

from agent.runtime.interface import TerminalSize
from agent.server import AgentService, start_server
from proto.skiff.v1 import api_pb2, api_pb2_grpc
from tests.agent.test_podworkers import World


async def serve(w: World, logs=None):
    service = AgentService(workers=w.workers, runtime=w.runtime, node_name="node-1", logs=logs)
    server, port = await start_server(service=service, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, api_pb2_grpc.AgentStub(channel)


async def running_pod(w: World, name: str, **kw) -> str:
    uid = w.api.add_pod(name, **kw).metadata.uid
    await w.workers.reconcile(uid)
    return uid


def log_of(w: World, uid: str, name: str = "main"):
    return w.runtime.containers[w.current(uid, name).id].config.log_path


async def read_logs(stub, **kw) -> bytes:
    return b"".join([c.data async for c in stub.Logs(api_pb2.LogsRequest(namespace="default", **kw))])


def test_logs_all_tail_previous_and_errors(tmp_path):
    async def scenario():
        w = World(tmp_path)
        server, channel, stub = await serve(w)
        try:
            uid = await running_pod(w, "web", restart_policy="Always")
            log_of(w, uid).write_bytes(b"one\ntwo\nthree\n")
            assert await read_logs(stub, name="web") == b"one\ntwo\nthree\n"
            assert await read_logs(stub, name="web", tail_lines=2) == b"two\nthree\n"
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await read_logs(stub, name="web", previous=True)
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND

            w.runtime.exit(w.current(uid).id, 1)
            await w.workers.reconcile(uid)  # restarted at once: attempt 1
            log_of(w, uid).write_bytes(b"second life\n")
            assert await read_logs(stub, name="web") == b"second life\n"
            assert await read_logs(stub, name="web", previous=True) == b"one\ntwo\nthree\n"

            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await read_logs(stub, name="nosuch")
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND and "nosuch" in exc.value.details()
            two = await running_pod(w, "two", containers=[{"name": "a"}, {"name": "b"}])
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await read_logs(stub, name="two")
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "choose one of" in exc.value.details()
            log_of(w, two, "b").write_bytes(b"from b\n")
            assert await read_logs(stub, name="two", container="b") == b"from b\n"
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_logs_follow_streams_until_the_container_exits(tmp_path):
    async def scenario():
        w = World(tmp_path)
        server, channel, stub = await serve(w)
        try:
            uid = await running_pod(w, "tailer", restart_policy="Never")
            path = log_of(w, uid)
            path.write_bytes(b"first\n")
            call = stub.Logs(api_pb2.LogsRequest(namespace="default", name="tailer", follow=True))
            received = []
            async for chunk in call:
                received.append(chunk.data)
                if chunk.data == b"first\n":
                    with open(path, "ab") as f:
                        f.write(b"last words\n")
                    w.runtime.exit(w.current(uid).id, 0)
            assert b"".join(received) == b"first\nlast words\n"
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_exec_passes_stdin_output_and_exit_code(tmp_path):
    async def scenario():
        w = World(tmp_path)
        w.runtime.exec_handler = lambda argv, stdin: (stdin.upper(), b"warn\n", 3)
        server, channel, stub = await serve(w)
        try:
            await running_pod(w, "sh")

            async def requests():
                yield api_pb2.ExecInput(start=api_pb2.ExecStart(namespace="default", name="sh",
                                                                command=["cat"], stdin=True))
                yield api_pb2.ExecInput(stdin=b"abc\n")
                yield api_pb2.ExecInput(close_stdin=True)
            out = [o async for o in stub.Exec(requests())]
            assert [(o.WhichOneof("output"), getattr(o, o.WhichOneof("output"))) for o in out] == [
                ("stdout", b"ABC\n"), ("stderr", b"warn\n"), ("exit_code", 3)]

            async def bad():
                yield api_pb2.ExecInput(stdin=b"x")
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                [o async for o in stub.Exec(bad())]
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_exec_passes_the_terminal_size_and_resizes(tmp_path):
    async def scenario():
        w = World(tmp_path)
        w.runtime.exec_handler = lambda argv, stdin: (stdin, b"", 0)
        server, channel, stub = await serve(w)
        try:
            await running_pod(w, "vi")

            async def requests():
                start = api_pb2.ExecStart(namespace="default", name="vi", command=["vi"], stdin=True, tty=True)
                start.size.rows, start.size.cols = 30, 100
                yield api_pb2.ExecInput(start=start)
                yield api_pb2.ExecInput(resize=api_pb2.TerminalSize(rows=40, cols=120))
                yield api_pb2.ExecInput(stdin=b":q\n")
                yield api_pb2.ExecInput(close_stdin=True)
            out = [o async for o in stub.Exec(requests())]
            assert out[-1].exit_code == 0
            sizes = [(c[0], c[2]) for c in w.runtime.calls if c[0] in ("size", "resize")]
            assert sizes == [("size", TerminalSize(30, 100)), ("resize", TerminalSize(40, 120))]
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_stats_lists_running_containers(tmp_path):
    async def scenario():
        w = World(tmp_path)
        server, channel, stub = await serve(w)
        try:
            await running_pod(w, "a")
            done = await running_pod(w, "b", restart_policy="Never")
            w.runtime.exit(w.current(done).id, 0)
            await w.workers.reconcile(done)
            stats = await stub.Stats(api_pb2.StatsRequest(node_name="node-1"))
            assert [(c.namespace, c.pod, c.container) for c in stats.containers] == [("default", "a", "main")]
            assert stats.containers[0].memory_working_set_bytes == 4 << 20 and stats.containers[0].pids == 1
            assert stats.memory_working_set_bytes > 0
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_logs_read_and_follow_across_rotated_files(tmp_path):
    from agent.containerlogs import ContainerLogManager, rotated_files

    async def scenario():
        w = World(tmp_path)
        uid = await running_pod(w, "chatty")
        path = log_of(w, uid)
        manager = ContainerLogManager(pods_dir=path.parents[2], max_size=8192, max_files=10)
        server, channel, stub = await serve(w, logs=manager)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            first = b"".join(b"early %05d\n" % i for i in range(3000))
            os.write(fd, first)
            await manager.rotate_all()
            assert rotated_files(path)
            assert await read_logs(stub, name="chatty") == first
            assert await read_logs(stub, name="chatty", tail_lines=2) == b"early 02998\nearly 02999\n"
            follow = stub.Logs(api_pb2.LogsRequest(namespace="default", name="chatty", follow=True))
            got = b""
            async for chunk in follow:   # everything so far, then what comes across the next rotation
                got += chunk.data
                if got == first:
                    break
            later = b"".join(b"later %05d\n" % i for i in range(3000))
            os.write(fd, later)
            await manager.rotate_all()
            w.runtime.exit(w.current(uid).id, 0)
            async for chunk in follow:
                got += chunk.data
            assert got == first + later
            os.close(fd)
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_stats_for_another_node_name_is_refused(tmp_path):
    async def scenario():
        w = World(tmp_path)
        server, channel, stub = await serve(w)
        try:
            for name, shown in (("node-2", "'node-2'"), ("x" * 100_000, "'" + "x" * 100 + "...'")):
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await stub.Stats(api_pb2.StatsRequest(node_name=name))
                assert exc.value.code() == grpc.StatusCode.NOT_FOUND
                assert exc.value.details() == f"this agent is node node-1, not {shown}"
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


def test_cadvisor_series_follow_the_stats(tmp_path):
    """/metrics/cadvisor renders the stats loop's last snapshot under cAdvisor's
    names and labels; a container that went away takes its series with it."""
    async def scenario():
        from prometheus_client.parser import text_string_to_metric_families
        from agent.cadvisor import collect
        from agent.runtime.interface import ContainerStats
        w = World(tmp_path)
        uid = await running_pod(w, "hungry")
        cid = w.current(uid).id
        w.runtime.stats_by_id[cid] = ContainerStats(id=cid, cpu_usage_seconds=1.5, memory_working_set_bytes=123456,
                                                    pids=7, memory_rss_bytes=100000, memory_limit_bytes=2**25,
                                                    cpu_periods=10, cpu_throttled_periods=4, oom_events=1)
        m = w.workers.metrics

        def samples() -> dict[str, dict]:
            out: dict[str, dict] = {}
            for family in text_string_to_metric_families(m.cadvisor.render()[1].decode()):
                for s in family.samples:
                    if s.labels.get("pod") == "hungry":
                        out[s.name] = s
            return out
        m.cadvisor.collector.update(await collect(records=w.workers.records.values(), runtime=w.runtime))
        got = samples()
        labels = got["container_memory_working_set_bytes"].labels
        assert {k: labels[k] for k in ("namespace", "pod", "container", "node")} == {
            "namespace": "default", "pod": "hungry", "container": "main", "node": "node-1"}
        assert labels["image"] == w.current(uid).image
        assert labels["id"] == f"/skiff/pod-{uid}/{cid}"   # the cgroup, under the agent's --cgroup-parent
        assert got["container_memory_working_set_bytes"].value == 123456
        assert got["container_cpu_usage_seconds_total"].value == 1.5
        assert got["container_memory_rss"].value == 100000
        assert got["container_spec_memory_limit_bytes"].value == 2**25
        assert got["container_cpu_cfs_throttled_periods_total"].value == 4
        assert got["container_oom_events_total"].value == 1
        assert got["container_processes"].value == 7
        w.runtime.stats_by_id.pop(cid)
        w.runtime.exit(cid, 0)
        await w.workers.reconcile(uid)
        m.cadvisor.collector.update(await collect(records=w.workers.records.values(), runtime=w.runtime))
        assert samples() == {}


def test_logs_of_a_finished_pod_survive_an_agent_restart(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = await running_pod(w, "job", restart_policy="OnFailure")
        log_of(w, uid).write_bytes(b"try 0\n")
        w.runtime.exit(w.current(uid).id, 1)
        await w.workers.reconcile(uid)  # restarted: attempt 1
        log_of(w, uid).write_bytes(b"try 1\n")
        w.runtime.exit(w.current(uid).id, 0)
        await w.workers.reconcile(uid)
        assert w.status("job")[0].phase == "Succeeded" and w.runtime.containers == {}
        await w.workers.shutdown()
        w.workers = w.new_workers()  # the agent restarts; nothing of the pod is left in the runtime
        await w.workers.recover()
        await w.workers.reconcile(uid)
        server, channel, stub = await serve(w)
        try:
            assert await read_logs(stub, name="job") == b"try 1\n"
            assert await read_logs(stub, name="job", previous=True) == b"try 0\n"
        finally:
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())


class NodeSockets:
    """Sockets double: the node's own namespace, recording which pod namespace was asked for."""

    def __init__(self) -> None:
        self.netns: list[object] = []

    def socket(self, netns, family):
        import socket
        self.netns.append(netns)
        return socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)


def test_port_forward_carries_a_connection_both_ways(tmp_path):
    async def scenario():
        w = World(tmp_path)
        sockets = NodeSockets()
        service = AgentService(workers=w.workers, runtime=w.runtime, node_name="node-1", sockets=sockets)
        server, port = await start_server(service=service, host="127.0.0.1", port=0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = api_pb2_grpc.AgentStub(channel)

        async def upper_until_eof(reader, writer):   # answers only after the client's EOF
            writer.write((await reader.read()).upper())
            await writer.drain()
            writer.close()
        app = await asyncio.start_server(upper_until_eof, "127.0.0.1", 0)
        app_port = app.sockets[0].getsockname()[1]
        try:
            await running_pod(w, "web")

            def forward(pod: str, to: int, *chunks: bytes):
                async def requests():
                    yield api_pb2.PortForwardInput(start=api_pb2.PortForwardStart(namespace="default", name=pod,
                                                                                  port=to))
                    for chunk in chunks:
                        yield api_pb2.PortForwardInput(data=chunk)
                    yield api_pb2.PortForwardInput(close_write=True)
                return stub.PortForward(requests())

            outputs = [o async for o in forward("web", app_port, b"abc", b"def\n")]
            # First the agent says it reached the port (senders wait for it), then the answer.
            assert outputs[0] == api_pb2.PortForwardOutput(connected=True)
            assert b"".join(o.data for o in outputs[1:]) == b"ABCDEF\n"
            assert sockets.netns == [w.workers.lookup("default", "web").sandbox.netns_path]

            app.close()
            await app.wait_closed()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                [o async for o in forward("web", app_port)]
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert refused.value.details() == (f"error forwarding port {app_port} to pod web: connect to "
                                               f"127.0.0.1:{app_port} in the pod: connection refused")
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                [o async for o in forward("nope", app_port)]
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            app.close()
            await channel.close()
            await server.stop(None)
    asyncio.run(scenario())
