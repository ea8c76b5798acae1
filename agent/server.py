"""The agent's own gRPC service `Agent` (api.proto): Logs, Exec, Attach, PortForward, Stats.

The control plane is its client: it proxies `skiff logs/exec/top` to the
agent of the pod's node at the node's InternalIP and daemonEndpoints port. The
service finds containers through the pod workers' records (namespace/name →
the current attempt), so it answers for exactly the pods this agent runs.

Logs reads the attempt's log file (<pods>/<ns>_<name>_<uid>/<c>/<restart>.log)
after its rotated files, as one stream (containerlogs.LogStream); `previous`
is the attempt before; `follow` keeps reading, across rotations, until the
container has exited and the file is drained, or the client goes away.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

import grpc

from agent import attach, portforward, procfs
from agent.containerlogs import ContainerLogManager, LogStream
from agent.prober.checks import NetnsSockets, Sockets
from agent.podworkers import PodRecord, PodWorkers
from agent.runtime.interface import Runtime, StartError, State, TerminalSize
from proto.skiff.v1 import api_pb2, api_pb2_grpc
from skiff.grpcdecoding import add_servicer

if TYPE_CHECKING:
    from skiff.pki import Credentials

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _latest_log(container_dir: Path) -> int:
    """The highest restart count with a log file in the container's log dir (0 if none)."""
    try:
        return max((int(p.stem) for p in container_dir.glob("*.log") if p.stem.isdigit()), default=0)
    except OSError:
        return 0


class AgentService(api_pb2_grpc.AgentServicer):
    def __init__(self, *, workers: PodWorkers, runtime: Runtime, node_name: str,
                 logs: ContainerLogManager | None = None, sockets: Sockets | None = None) -> None:
        self.workers = workers
        self._sockets = sockets   # opened on first port-forward (NetnsSockets needs root)
        self.runtime = runtime
        self.node_name = node_name
        self.logs = logs   # the rotation a reader must follow (None: logs are never rotated)

    # ------------------------------------------------------------ lookups

    def _pod(self, namespace: str, name: str) -> PodRecord:
        rec = self.workers.lookup(namespace or "default", name)
        if rec is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"pod {namespace or 'default'}/{name} is not running on "
                                                    f"node {self.node_name}")
        return rec

    def _container_name(self, rec: PodRecord, container: str) -> str:
        pod = self.workers.pods.get((rec.namespace, rec.name))
        names = [c.name for c in pod.spec.containers] if pod is not None else list(rec.containers)
        init_names = [c.name for c in pod.spec.init_containers] if pod is not None else list(rec.init_containers)
        if not container:
            if len(names) == 1:
                return names[0]
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"a container name must be specified for pod {rec.name}, choose one of: {names}")
        if container not in names + init_names:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"container {container} is not valid for pod {rec.name}")
        return container

    # ------------------------------------------------------------ Logs

    async def Logs(self, request: api_pb2.LogsRequest, context) -> AsyncIterator[api_pb2.LogChunk]:
        try:
            rec = self._pod(request.namespace, request.name)
            name = self._container_name(rec, request.container)
            cr = rec.containers.get(name) or rec.init_containers.get(name)
            # A finished pod's containers are gone after an agent restart; its log files stay.
            restart = cr.restart if cr is not None else _latest_log(rec.paths.log_path(name, 0).parent)
            if request.previous:
                if restart == 0:
                    raise _Abort(grpc.StatusCode.NOT_FOUND, f'previous terminated container "{name}" in pod '
                                                            f'"{rec.name}" not found')
                restart -= 1
            path = rec.paths.log_path(name, restart)
            if not path.exists() and request.previous:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'previous terminated container "{name}" in pod '
                                                        f'"{rec.name}" not found')
            if not path.exists():
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'container "{name}" in pod "{rec.name}" is waiting to '
                                                        f'start: no log yet')
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        follow_id = None
        if request.follow and not request.previous and cr is not None and cr.current is not None:
            follow_id = cr.current.id

        async def exited() -> bool:
            try:
                return (await self.runtime.status(follow_id)).state is State.EXITED
            except Exception:  # noqa: BLE001 - gone: nothing more will be written
                return True
        async for chunk in LogStream(self.logs, path).read(
                follow=exited if follow_id is not None else None, tail_lines=request.tail_lines,
                poll_seconds=FOLLOW_POLL_SECONDS):
            yield api_pb2.LogChunk(data=chunk)

    # ------------------------------------------------------------ Exec

    async def Exec(self, request_iterator, context) -> AsyncIterator[api_pb2.ExecOutput]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("input") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first Exec message must be ExecStart")
            return
        start = first.start
        try:
            rec = self._pod(start.namespace, start.name)
            name = self._container_name(rec, start.container)
            cr = rec.containers.get(name) or rec.init_containers.get(name)
            if cr is None or cr.current is None or cr.current.state is not State.RUNNING:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                             f"container {name} in pod {rec.name} is not running")
            if not start.command:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "exec: a command is required")
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        outputs: asyncio.Queue = asyncio.Queue()

        class Output:
            async def stdout(self, data: bytes) -> None:
                await outputs.put(api_pb2.ExecOutput(stdout=data))

            async def stderr(self, data: bytes) -> None:
                await outputs.put(api_pb2.ExecOutput(stderr=data))

        async def stdin() -> AsyncIterator[bytes | TerminalSize]:
            async for message in request_iterator:
                which = message.WhichOneof("input")
                if which == "stdin":
                    yield message.stdin
                elif which == "resize":
                    yield TerminalSize(rows=message.resize.rows, cols=message.resize.cols)
                elif which == "close_stdin":
                    return

        async def run() -> None:
            try:
                size = (TerminalSize(rows=start.size.rows, cols=start.size.cols)
                        if start.tty and start.HasField("size") else None)
                result = await self.runtime.exec(cr.current.id, list(start.command), tty=start.tty,
                                                 stdin=stdin() if start.stdin else None, output=Output(),
                                                 size=size)
                await outputs.put(api_pb2.ExecOutput(exit_code=result.exit_code))
            except StartError as exc:
                await outputs.put(api_pb2.ExecOutput(stderr=f"{exc}\n".encode()))
                await outputs.put(api_pb2.ExecOutput(exit_code=126))
            except Exception as exc:  # the client must hear why, not hang
                log.exception("exec in %s failed", cr.current.id)
                await outputs.put(exc)
            await outputs.put(None)

        task = asyncio.create_task(run())
        try:
            while (item := await outputs.get()) is not None:
                if isinstance(item, Exception):
                    await context.abort(grpc.StatusCode.INTERNAL, f"exec failed: {item}")
                    return
                yield item
        finally:
            task.cancel()

    # ------------------------------------------------------------ Attach

    async def Attach(self, request_iterator, context) -> AsyncIterator[api_pb2.ExecOutput]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("input") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first Attach message must be ExecStart")
            return
        start = first.start
        try:
            rec = self._pod(start.namespace, start.name)
            name = self._container_name(rec, start.container)
            cr = rec.containers.get(name) or rec.init_containers.get(name)
            if cr is None or cr.current is None or cr.current.state is not State.RUNNING:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                             f"container {name} in pod {rec.name} is not running")
            if start.tty:
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"attach to a terminal (tty) is not supported yet: "
                                                            f"attach to {name} without -t")
            path = rec.paths.log_path(name, cr.restart)
            fifo = self.runtime.stdin_fifo(cr.current.id) if start.stdin else None
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        container_id = cr.current.id
        exit_code: list[int | None] = [None]   # seen when the program is found exited

        async def exited() -> bool:
            try:
                status = await self.runtime.status(container_id)
            except Exception:  # noqa: BLE001 - gone (removed after it exited): the record kept its status
                for status in (cr.current, cr.previous):
                    if status is not None and status.id == container_id:
                        exit_code[0] = status.exit_code
                return True
            exit_code[0] = status.exit_code
            return status.state is State.EXITED

        async def stdin() -> AsyncIterator[bytes]:
            async for message in requests:
                which = message.WhichOneof("input")
                if which == "stdin":
                    yield message.stdin
                elif which == "close_stdin":
                    return   # the program keeps its stdin open (no stdinOnce)

        # Positioned at the end before any stdin is passed on (the first step runs first).
        output = aiter(LogStream(self.logs, path).read(follow=exited, from_end=True,
                                                       poll_seconds=attach.POLL_SECONDS))
        first_chunk = asyncio.ensure_future(anext(output, None))
        feeder = asyncio.create_task(attach.feed_fifo(fifo, stdin())) if fifo is not None else None
        try:
            data = await first_chunk
            while data is not None:
                yield api_pb2.ExecOutput(stdout=data)
                data = await anext(output, None)
            if exit_code[0] is not None:
                yield api_pb2.ExecOutput(exit_code=exit_code[0])
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)

    # ------------------------------------------------------------ PortForward

    async def PortForward(self, request_iterator, context) -> AsyncIterator[api_pb2.PortForwardOutput]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("input") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first PortForward message must be `start`")
            return
        start = first.start
        try:
            rec = self._pod(start.namespace, start.name)
            if not 0 < start.port < 65536:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid port {start.port}")
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        if self._sockets is None:
            self._sockets = NetnsSockets()
        netns = rec.sandbox.netns_path if rec.sandbox is not None else None
        try:
            reader, writer = await portforward.connect(self._sockets, netns, start.port)
        except OSError as exc:
            # FAILED_PRECONDITION, not UNAVAILABLE: the agent answered; nothing listens in the pod.
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"error forwarding port {start.port} to pod {rec.name}: "
                                f"connect to 127.0.0.1:{start.port} in the pod: {reason}")
            return

        async def inputs() -> AsyncIterator[bytes | None]:
            async for message in requests:
                which = message.WhichOneof("input")
                if which == "data":
                    yield message.data
                elif which == "close_write":
                    yield None
                    return

        yield api_pb2.PortForwardOutput(connected=True)   # the sender may now send data
        async for data in portforward.pump(reader, writer, inputs()):
            yield api_pb2.PortForwardOutput(data=data)

    # ------------------------------------------------------------ Stats

    async def Stats(self, request: api_pb2.StatsRequest, context) -> api_pb2.NodeStats:
        # The control plane asks the node by name: answering for another name would
        # hand out this node's numbers as that node's.
        if request.node_name and request.node_name != self.node_name:
            shown = request.node_name if len(request.node_name) <= 100 else request.node_name[:100] + "..."
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"this agent is node {self.node_name}, not {shown!r}")
            return api_pb2.NodeStats()
        return await node_stats(workers=self.workers, runtime=self.runtime, node_name=self.node_name)


async def node_stats(*, workers: PodWorkers, runtime: Runtime, node_name: str) -> api_pb2.NodeStats:
    """Per-container CPU, memory working set and pids of the running containers, and the node's."""
    out = api_pb2.NodeStats(node_name=node_name)
    for rec in list(workers.records.values()):
        for name, cr in [*rec.init_containers.items(), *rec.containers.items()]:
            if cr.current is None or cr.current.state is not State.RUNNING:
                continue
            try:
                st = await runtime.stats(cr.current.id, filesystem=False)
            except Exception as exc:  # it may have exited since
                log.debug("stats %s: %s", cr.current.id, exc)
                continue
            out.containers.add(namespace=rec.namespace, pod=rec.name, container=name,
                               cpu_usage_seconds=st.cpu_usage_seconds,
                               memory_working_set_bytes=st.memory_working_set_bytes, pids=st.pids)
    out.cpu_usage_seconds, out.memory_working_set_bytes = _host_usage()
    return out


def _host_usage() -> tuple[float, int]:
    import os
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in fields]
        busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle and iowait
        cpu = busy / os.sysconf("SC_CLK_TCK")
        mem = procfs.meminfo()
        return cpu, mem["MemTotal"] - procfs.memory_available(mem)
    except (OSError, ValueError, KeyError, IndexError):
        return 0.0, 0


async def _control_plane_only(method: str, _request: Any, context: grpc.aio.ServicerContext) -> None:
    """Secure mode: the TLS layer has verified the peer's certificate against the cluster CA;
    only the control plane's may run commands in, read logs of, or forward ports to this node's pods."""
    from skiff import pki
    pems = (context.auth_context() or {}).get("x509_pem_cert") or []
    user = ""
    if pems:
        from cryptography import x509
        user = pki.identity_of(x509.load_pem_x509_certificate(pems[0])).user
    if user != pki.CONTROLPLANE_USER:
        log.warning("refused %s from %s: certificate of %r, not the control plane's", method, context.peer(),
                    user or "nobody")
        context.set_trailing_metadata((("skiff-origin", "agent"),))
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"the agent's service answers only the control plane ({pki.CONTROLPLANE_USER}), "
                            f"not {user or 'an anonymous client'}")


async def start_server(*, service: AgentService, host: str, port: int, tls: "Credentials | None" = None,
                       images: Any = None, tls_credentials: Any = None) -> tuple[grpc.aio.Server, int]:
    """Serve the Agent service (and `images`, the Images service: archives loaded into the node's
    store, decision 33); returns the server and the port bound (port 0: a free one).
    With `tls` (secure mode): mutual TLS, and only the control plane's certificate is answered."""
    server = grpc.aio.server()
    # Requests decoded by the service: garbage is INVALID_ARGUMENT naming the message, not UNKNOWN (issue 15).
    add_servicer(api_pb2_grpc.add_AgentServicer_to_server, service, server, "skiff.v1.Agent", origin="agent",
                 guard=_control_plane_only if tls is not None else None)
    if images is not None:
        from proto.skiff.v1 import images_pb2_grpc
        add_servicer(images_pb2_grpc.add_ImagesServicer_to_server, images, server, "skiff.v1.Images",
                     origin="agent", guard=_control_plane_only if tls is not None else None)
    try:
        if tls is None:
            bound = server.add_insecure_port(f"{host}:{port}")
        else:
            # `tls_credentials`: the rotating certificate's (agent/certrotation.py), read at each handshake.
            bound = server.add_secure_port(f"{host}:{port}", tls_credentials or grpc.ssl_server_credentials(
                [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True))
    except RuntimeError:  # grpc's way of saying the address is taken or not ours
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (--listen): address in use or not available")
    await server.start()
    return server, bound
