"""The async client of the control plane's `Api` gRPC service.

Everything that talks to the control plane goes through `ApiClient`: the CLI,
the node agent and the control plane's own controllers and scheduler (which
reach their API server over loopback, like any client). Objects travel typed
(`types_pb2.Pod`, `types_pb2.Node`, ...) and are put in and taken out of the
`Object` envelope here, through `skiff.api.kinds`.

gRPC status codes come back as exceptions, so callers write
`except NotFound:` instead of inspecting codes:

    NOT_FOUND         -> NotFound
    ALREADY_EXISTS    -> AlreadyExists
    ABORTED           -> Conflict      (stale resourceVersion)
    INVALID_ARGUMENT  -> Invalid       (.field_path from trailing metadata)
    OUT_OF_RANGE      -> Gone          (watch from a compacted revision)
    UNAVAILABLE       -> Unavailable   (message names the address)
    anything else     -> ApiError
"""
from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, AsyncIterable, AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import Message

from proto.metadata import FIELD_PATH_METADATA, ORIGIN_METADATA, RETRY_AFTER_METADATA, WARNING_METADATA
from proto.skiff.v1 import api_pb2, api_pb2_grpc
from skiff.api import kinds

if TYPE_CHECKING:
    from skiff.pki import Credentials

MAX_OVERLOAD_RETRIES = 10


def _retry_after(exc: grpc.aio.AioRpcError) -> float | None:
    """The seconds a RESOURCE_EXHAUSTED answer asks the client to wait before trying again, if any."""
    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_AFTER_METADATA:
            try:
                return min(max(float(value), 0.0), 60.0)
            except ValueError:
                return None
    return None


class ApiError(Exception):
    """An error returned by the Skiff API (or the failure to reach it)."""

    code: grpc.StatusCode | None = None

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    """The object changed since the resourceVersion the caller sent."""
    code = grpc.StatusCode.ABORTED


class Invalid(ApiError):
    """The object failed validation; `field_path` names the offending field."""
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field_path: str = "", code: grpc.StatusCode | None = None) -> None:
        super().__init__(message, code=code)
        self.field_path = field_path


class Gone(ApiError):
    """The requested watch revision has been compacted: list again."""
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unreachable(Unavailable):
    """No connection to the API at all (refused, no route, name unknown), as
    opposed to a server that answers UNAVAILABLE itself (etcd down)."""


class TooManyRequests(ApiError):
    """Refused for now (HTTP's 429): an eviction a PodDisruptionBudget does not allow yet."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls for cls in (NotFound, AlreadyExists, Conflict, Invalid, Gone, Unavailable, TooManyRequests)
}


def _short_reason(details: str) -> str:
    """gRPC's connection failures are long ("failed to connect to all addresses;
    last error: UNKNOWN: ipv4:...: Failed to connect to remote host: Connection
    refused"); a user needs the last clause."""
    lowered = details.lower()
    for reason in ("connection refused", "deadline exceeded", "no route to host",
                   "connection reset", "name resolution", "timed out"):
        if reason in lowered:
            return reason
    return details.rsplit(": ", 1)[-1] if details else "unavailable"


def error_from_rpc(exc: grpc.RpcError, *, address: str) -> ApiError:
    """The ApiError subclass for a failed call."""
    code = exc.code()
    details = exc.details() or code.name
    metadata = {key: value for key, value in (exc.trailing_metadata() or ())}
    if code == grpc.StatusCode.UNAVAILABLE:
        # The server itself may say UNAVAILABLE (etcd down) with its own message.
        lowered = details.lower()
        if ORIGIN_METADATA not in metadata and any(w in lowered for w in ("failed to connect", "connection refused", "connect failed",
                                      "socket closed", "dns resolution", "no route")):
            return Unreachable(f"cannot reach the Skiff API at {address}: {_short_reason(details)}")
        return Unavailable(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details.lower():
        # gRPC's own words: "Received message larger than max (20000180 vs. 3145728)".
        sizes = re.search(r"\((\d+) vs\. (\d+)\)", details)
        what = f"a message of {sizes.group(1)} bytes, the limit is {sizes.group(2)}" if sizes else details
        return ApiError(f"too large for the Skiff API at {address}: {what}", code=code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiError(f"the Skiff API at {address} did not answer in time: {details}", code=code)
    field_path = metadata.get(FIELD_PATH_METADATA, "")
    return error_for(code, details, field_path=field_path.decode() if isinstance(field_path, bytes) else field_path)


def error_for(code: grpc.StatusCode, message: str, *, field_path: str = "") -> ApiError:
    """The ApiError subclass for a code the API answered with (FakeApiClient raises these too)."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return Invalid(message, field_path=field_path)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    return ApiError(message, code=code)


def _untrusted_server(address: str, credentials: "Credentials") -> ApiError | None:
    """When the server's certificate does not chain to the CA this client trusts: an error naming
    the certificate's SHA-256 fingerprint (as kubectl refuses an unknown authority); else None."""
    import ssl

    from cryptography import x509

    from skiff import pki
    host, _, port = address.rpartition(":")
    try:
        pem = ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=5).encode()
        leaf = x509.load_pem_x509_certificate(pem)
        ca = x509.load_pem_x509_certificate(credentials.ca)
    except (OSError, ValueError):
        return None
    try:
        leaf.verify_directly_issued_by(ca)
        return None   # signed by our CA: the handshake failed for another reason
    except Exception:  # noqa: BLE001 - InvalidSignature, a different issuer (ValueError), a different key type
        pass
    return ApiError(f"the Skiff API at {address} presents a certificate this client's CA did not sign "
                    f"(SHA-256 fingerprint {pki.fingerprint(pem)}): refusing it; is the configured "
                    f"certificate-authority this cluster's?", code=grpc.StatusCode.UNAVAILABLE)


def _lost_status(exc: grpc.aio.AioRpcError) -> bool:
    """A streaming call whose server ended it as the client was writing: gRPC's asyncio client
    then reports INTERNAL "Internal error from Core" (the failed write) in place of the status
    the server sent (grpc/grpc#36066)."""
    return exc.code() == grpc.StatusCode.INTERNAL and exc.details() == "Internal error from Core"


def _kind_name(kind: str) -> str:
    """Accept "Pod", "pod", "pods", "po": send the canonical kind name.
    A kind this client does not know goes as typed: the server decides."""
    try:
        return kinds.kind_named(kind).name
    except kinds.UnknownKind:
        pass
    try:
        return kinds.kind_for_resource(kind).name
    except kinds.UnknownKind:
        return kind


async def list_in_chunks(list_page: Callable[..., Awaitable[tuple[list[Message], str, str]]], kind: str,
                         namespace: str = "", label_selector: str = "", field_selector: str = "", *,
                         chunk_size: int = 0, timeout: float | None = 60) -> tuple[list[Message], str]:
    """client-go's pager over a `list_page` callable: every page at the first
    page's revision; if that revision leaves the server's window before the last
    page (Gone), the list is read again whole. chunk_size <= 0 reads one page."""
    if chunk_size <= 0:
        items, revision, _ = await list_page(kind, namespace, label_selector, field_selector, timeout=timeout)
        return items, revision
    everything: list[Message] = []
    token = first_revision = ""
    while True:
        try:
            items, revision, token = await list_page(kind, namespace, label_selector, field_selector,
                                                     limit=chunk_size, continue_=token, timeout=timeout)
        except Gone:
            if not first_revision:
                raise
            return await list_in_chunks(list_page, kind, namespace, label_selector, field_selector,
                                        timeout=timeout)
        everything += items
        first_revision = first_revision or revision
        if not token:
            return everything, first_revision


class ApiClient:
    """An async client of one control plane.

    The gRPC channel is opened on first use (inside the running event loop) and
    closed by `close()`; also usable as `async with ApiClient(addr) as c:`.
    """

    def __init__(self, address: str, *, on_warning: Callable[[str], None] | None = None,
                 credentials: "Credentials | None" = None) -> None:
        """`credentials`: the cluster CA and a client certificate, for a secure API (decision 32)."""
        self.address = address
        self.credentials = credentials
        # Called with each warning the server sends about a write (kubectl's
        # WarningHandler); the CLI prints them to stderr.
        self.on_warning = on_warning
        self._channel: grpc.aio.Channel | None = None
        self._stub: api_pb2_grpc.ApiStub | None = None

    # ------------------------------------------------------------ plumbing

    @property
    def stub(self) -> api_pb2_grpc.ApiStub:
        if self._stub is None:
            options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            if self.credentials is None:
                self._channel = grpc.aio.insecure_channel(self.address, options=options)
            else:
                self._channel = grpc.aio.secure_channel(self.address, grpc.ssl_channel_credentials(
                    root_certificates=self.credentials.ca, private_key=self.credentials.key or None,
                    certificate_chain=self.credentials.cert or None), options=options)
            self._stub = api_pb2_grpc.ApiStub(self._channel)
        return self._stub

    async def close(self) -> None:
        for old in getattr(self, "_retired", ()):   # channels of replaced credentials
            await old.close()
        self._retired = []
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None

    async def use_credentials(self, credentials: "Credentials") -> None:
        """Swap in a renewed certificate (agent/certrotation.py): the next call opens a new channel with it.
        Calls and watches already on the old channel stay there (their TLS session is established; closing
        it would cancel a watch under its informer); it is closed with the client."""
        if self._channel is not None:
            self._retired = [*getattr(self, "_retired", []), self._channel]
        self.credentials = credentials
        self._channel, self._stub = None, None

    def _error(self, exc: grpc.RpcError) -> ApiError:
        error = error_from_rpc(exc, address=self.address)
        if self.credentials is not None and isinstance(error, Unavailable) and error.code == grpc.StatusCode.UNAVAILABLE:
            return _untrusted_server(self.address, self.credentials) or error
        return error

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Message, timeout: float | None) -> Message:
        for attempt in range(MAX_OVERLOAD_RETRIES + 1):
            try:
                call = getattr(self.stub, method)(request, timeout=timeout)
                response = await call
                if self.on_warning is not None and method in ("Apply", "Create", "Update"):
                    for key, value in await call.trailing_metadata() or ():
                        if key == WARNING_METADATA:
                            self.on_warning(value.decode() if isinstance(value, bytes) else value)
                return response
            except grpc.aio.AioRpcError as exc:
                retry_after = _retry_after(exc)
                if retry_after is None or attempt == MAX_OVERLOAD_RETRIES:
                    raise self._error(exc) from None
                # Refused unserved by the server's in-flight limit: again after the time it asked
                # for, as client-go retries a 429 with Retry-After (10 times).
                await asyncio.sleep(retry_after)
        raise AssertionError("not reached")

    # ------------------------------------------------------------ objects

    async def apply(self, obj: Message, *, dry_run: bool = False,
                    timeout: float | None = 30) -> tuple[Message, str]:
        """Create or update; returns the stored object and "created",
        "configured" or "unchanged"."""
        response = await self._call("Apply", api_pb2.ApplyRequest(object=kinds.wrap(obj), dry_run=dry_run),
                                    timeout)
        return kinds.unwrap(response.object), response.result

    async def create(self, obj: Message, *, timeout: float | None = 30) -> Message:
        response = await self._call("Create", api_pb2.CreateRequest(object=kinds.wrap(obj)), timeout)
        return kinds.unwrap(response)

    async def update(self, obj: Message, *, timeout: float | None = 30) -> Message:
        """Replace the object; compare-and-swap on metadata.resourceVersion
        when it is set (Conflict if stale)."""
        response = await self._call("Update", api_pb2.UpdateRequest(object=kinds.wrap(obj)), timeout)
        return kinds.unwrap(response)

    async def update_status(self, obj: Message, *, timeout: float | None = 30) -> Message:
        """Replace only the status of the object (CAS as `update`)."""
        response = await self._call("UpdateStatus", api_pb2.UpdateRequest(object=kinds.wrap(obj)), timeout)
        return kinds.unwrap(response)

    async def get(self, kind: str, name: str, namespace: str = "default", *, resource_version: str = "",
                  timeout: float | None = 30) -> Message:
        """resource_version "" the latest (a quorum read), "0" whatever the server's watch cache
        holds (cheap: kubelet reads its Node so), R an object not older than revision R."""
        key = api_pb2.ObjectKey(kind=_kind_name(kind), namespace=namespace, name=name)
        response = await self._call("Get", api_pb2.GetRequest(key=key, resource_version=resource_version), timeout)
        return kinds.unwrap(response)

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "", *, chunk_size: int = 0,
                   timeout: float | None = 60) -> tuple[list[Message], str]:
        """All matching objects and the store revision they were read at
        (the resource_version to start a watch from). With `chunk_size`, read in
        pages of that many, all at the first page's revision (kubectl's --chunk-size);
        if that revision leaves the server's window before the last page (Gone),
        the list is read again whole, as client-go's pager does."""
        return await list_in_chunks(self.list_page, kind, namespace, label_selector, field_selector,
                                    chunk_size=chunk_size, timeout=timeout)

    async def list_page(self, kind: str, namespace: str = "", label_selector: str = "",
                        field_selector: str = "", *, limit: int = 0, continue_: str = "",
                        resource_version: str = "", resource_version_match: str = "",
                        timeout: float | None = 60) -> tuple[list[Message], str, str]:
        """One page of a list, as Kubernetes' LIST with limit/continue: (objects,
        revision, the next page's continue token or "" after the last). A token
        whose revision the server no longer holds raises Gone."""
        request = api_pb2.ListRequest(kind=_kind_name(kind), namespace=namespace, label_selector=label_selector,
                                      field_selector=field_selector, limit=limit, resource_version=resource_version,
                                      resource_version_match=resource_version_match, **{"continue": continue_})
        response = await self._call("List", request, timeout)
        return ([kinds.unwrap(item) for item in response.items], response.resource_version,
                getattr(response, "continue"))

    async def delete(self, kind: str, name: str, namespace: str = "default",
                     grace_period_seconds: int | None = None, *, precondition_uid: str = "",
                     propagation_policy: str = "", timeout: float | None = 30) -> Message:
        """Delete; a pod bound to a node is only marked (deletionTimestamp) until
        its agent confirms with grace_period_seconds=0, and an object with
        finalizers until they are done. Returns the object as deleted or as
        marked. propagation_policy: "" (Background), Foreground or Orphan."""
        request = api_pb2.DeleteRequest(key=api_pb2.ObjectKey(kind=_kind_name(kind), namespace=namespace,
                                                               name=name),
                                        precondition_uid=precondition_uid, propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        response = await self._call("Delete", request, timeout)
        return kinds.unwrap(response)

    async def bind(self, name: str, node_name: str, namespace: str = "default", *,
                   resource_version: str = "", timeout: float | None = 30) -> Message:
        """Bind a pod to a node (spec.nodeName + condition PodScheduled=True)."""
        request = api_pb2.BindRequest(namespace=namespace, name=name, node_name=node_name,
                                      resource_version=resource_version)
        return kinds.unwrap(await self._call("Bind", request, timeout))

    async def evict(self, name: str, namespace: str = "default", *, grace_period_seconds: int | None = None,
                    precondition_uid: str = "", dry_run: bool = False, timeout: float | None = 30) -> Message:
        """Evict a pod (policy/v1 Eviction): deleted as `delete` would unless a
        PodDisruptionBudget forbids it now (TooManyRequests: try again later)."""
        request = api_pb2.EvictRequest(namespace=namespace, name=name, precondition_uid=precondition_uid,
                                       dry_run=dry_run)
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        return kinds.unwrap(await self._call("Evict", request, timeout))

    async def create_token(self, name: str, namespace: str = "default", *, audiences: tuple[str, ...] = (),
                           expiration_seconds: int | None = None, bound_kind: str = "", bound_name: str = "",
                           bound_uid: str = "", timeout: float | None = 30) -> Message:
        """A token for the ServiceAccount (serviceaccounts/NAME/token, `skiff create token`): the
        authentication.k8s.io/v1 TokenRequest back, the token in status.token."""
        from proto.skiff.v1 import serviceaccounts_pb2 as sa
        spec = sa.TokenRequestSpec(audiences=list(audiences), bound_object_ref=sa.BoundObjectReference(
            kind=bound_kind, api_version="v1" if bound_kind else "", name=bound_name, uid=bound_uid))
        if expiration_seconds is not None:
            spec.expiration_seconds = expiration_seconds
        request = sa.CreateTokenRequest(namespace=namespace, name=name, token_request=sa.TokenRequest(spec=spec))
        return await self._call("CreateToken", request, timeout)

    async def access_review(self, *, verb: str, resource: str, namespace: str = "", name: str = "",
                            subresource: str = "", api_group: str = "", user: str = "",
                            groups: tuple[str, ...] = (), timeout: float | None = 30) -> bool:
        """May the caller (or `user`, impersonated) do this? (`skiff auth can-i`)"""
        from proto.skiff.v1 import rbac_pb2
        request = rbac_pb2.AccessReviewRequest(verb=verb, resource=resource, subresource=subresource,
                                               namespace=namespace, name=name, api_group=api_group, user=user,
                                               groups=list(groups))
        return (await self._call("AccessReview", request, timeout)).allowed

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "",
                    field_selector: str = "", resource_version: str = "", *, bookmarks: bool = False
                    ) -> AsyncIterator[tuple[str, Message | None, str]]:
        """Yield (type, object, resource_version) for every change after
        `resource_version` (empty: the current objects first, as ADDED); with
        `bookmarks`, also ("BOOKMARK", None, revision) when the watch is idle.
        Raises Gone when that revision has been compacted."""
        request = api_pb2.WatchRequest(kind=_kind_name(kind), namespace=namespace,
                                       label_selector=label_selector, field_selector=field_selector,
                                       resource_version=resource_version, allow_watch_bookmarks=bookmarks)
        call = self.stub.Watch(request)
        try:
            async for event in call:
                yield event.type, kinds.unwrap(event.object) if event.HasField("object") else None, \
                    event.resource_version
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    # ------------------------------------------------------------ proxied to agents

    async def logs(self, name: str, namespace: str = "default", *, container: str = "",
                   follow: bool = False, tail_lines: int = 0, previous: bool = False) -> AsyncIterator[bytes]:
        request = api_pb2.LogsRequest(namespace=namespace, name=name, container=container,
                                      follow=follow, tail_lines=tail_lines, previous=previous)
        call = self.stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    async def exec(self, name: str, command: list[str], namespace: str = "default", *,
                   container: str = "", stdin: AsyncIterable[bytes | tuple[int, int]] | None = None,
                   tty: bool = False, size: tuple[int, int] | None = None,
                   ) -> AsyncIterator[tuple[str, bytes | int]]:
        """Run a command in a pod's container. Yields ("stdout", bytes),
        ("stderr", bytes) and finally ("exit_code", int). With tty, `size` is
        the terminal's (rows, cols) and a (rows, cols) item in stdin resizes it."""
        start = api_pb2.ExecStart(namespace=namespace, name=name, container=container,
                                  command=list(command), stdin=stdin is not None, tty=tty)
        if tty and size is not None:
            start.size.rows, start.size.cols = size

        async def requests() -> AsyncIterator[api_pb2.ExecInput]:
            yield api_pb2.ExecInput(start=start)
            if stdin is not None:
                async for data in stdin:
                    if isinstance(data, tuple):
                        yield api_pb2.ExecInput(resize=api_pb2.TerminalSize(rows=data[0], cols=data[1]))
                    else:
                        yield api_pb2.ExecInput(stdin=data)
                yield api_pb2.ExecInput(close_stdin=True)

        async for item in self._outputs(self.stub.Exec(requests())):
            yield item

    async def attach(self, name: str, namespace: str = "default", *, container: str = "",
                     stdin: AsyncIterable[bytes] | None = None) -> AsyncIterator[tuple[str, bytes | int]]:
        """Attach to a running container's own stdio: yields ("stdout", bytes)
        as it writes from now on, and ("exit_code", int) when it exits; stdin
        goes to a `stdin: true` container's program."""
        start = api_pb2.ExecStart(namespace=namespace, name=name, container=container, stdin=stdin is not None)

        async def requests() -> AsyncIterator[api_pb2.ExecInput]:
            yield api_pb2.ExecInput(start=start)
            if stdin is not None:
                async for data in stdin:
                    yield api_pb2.ExecInput(stdin=data)
                yield api_pb2.ExecInput(close_stdin=True)

        async for item in self._outputs(self.stub.Attach(requests())):
            yield item

    async def _outputs(self, call: Any) -> AsyncIterator[tuple[str, bytes | int]]:
        """An exec or attach stream's outputs, ending after its exit code."""
        exited = False
        try:
            async for out in call:
                which = out.WhichOneof("output")
                if which is not None:
                    exited = exited or which == "exit_code"
                    yield which, getattr(out, which)
        except grpc.aio.AioRpcError as exc:
            if not (exited and _lost_status(exc)):   # stdin still flowing as the command ended
                raise self._error(exc) from None
        finally:
            call.cancel()

    async def port_forward(self, name: str, port: int, namespace: str = "default", *,
                           data: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """One TCP connection to `port` inside a pod's network namespace: sends
        `data` (its end is the connection's EOF) and yields what comes back."""

        connected = asyncio.Event()

        async def requests() -> AsyncIterator[api_pb2.PortForwardInput]:
            yield api_pb2.PortForwardInput(start=api_pb2.PortForwardStart(namespace=namespace, name=name,
                                                                          port=port))
            # Data only once the agent has reached the port: a refusal then arrives as
            # its status, with no write of ours in flight to lose it (grpc/grpc#36066).
            await connected.wait()
            async for chunk in data:
                yield api_pb2.PortForwardInput(data=chunk)
            yield api_pb2.PortForwardInput(close_write=True)

        call = self.stub.PortForward(requests())
        try:
            async for out in call:
                connected.set()
                if out.data:
                    yield out.data
        except grpc.aio.AioRpcError as exc:
            # The pod's end closed the connection as ours was still sending: the connection is
            # over and every byte of it arrived; only the server's final status was lost.
            if not (connected.is_set() and _lost_status(exc)):
                raise self._error(exc) from None
        finally:
            call.cancel()

    async def stats(self, node_name: str, *, timeout: float | None = 30) -> api_pb2.NodeStats:
        return await self._call("Stats", api_pb2.StatsRequest(node_name=node_name), timeout)
