"""The HTTP server of the REST front door (aiohttp, in the control plane's
event loop): routing of Kubernetes' paths to discovery, OpenAPI, health and
the resource handlers, and every exception turned into a Status.

    /version /healthz /livez /readyz
    /api  /api/v1  /apis  /apis/<group>  /apis/<group>/<version>     discovery
    /openapi/v2  /openapi/v3  /openapi/v3/<api/v1 | apis/<g>/<v>>   schemas
    /apis/metrics.k8s.io/v1beta1/...                                 kubectl top (metrics.py)
    /api/v1/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]   resources
    /apis/<g>/<v>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]     (and the
                                                                     legacy /watch/ prefix)

Without `ssl_context`/`guard`, plain HTTP on loopback: anyone who can reach the
port can do anything. Secure (decision 32): HTTPS with the cluster CA, a client
certificate (asked for, verified when given) or a bearer token, anonymous
requests 401 and every resource request authorized (403 in Kubernetes' words);
a SelfSubjectAccessReview answers `kubectl auth can-i`.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from typing import Awaitable, Callable

from aiohttp import web

from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Registry
from controlplane.api.guard import selected_name
from controlplane.api.inflight import InflightLimits, Overloaded
from controlplane.auth import REQUESTER, Attributes, Guard, Identity, Unauthenticated
from controlplane.rest import codec, discovery, metrics, openapi, podlogs, portforward, streams
from controlplane.rest.resources import ResourceHandlers, Target, error_response, respond
from controlplane.rest.status import ApiError, from_exception

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 3 * 1024 * 1024   # as the gRPC server and Kubernetes' API server
_NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")
_UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
_SSAR = ("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
# Anonymous requests reach the authorizer only here, as kube-apiserver's anonymous.conditions: the
# cluster-info ConfigMap a joining machine reads before it has a credential (decision 36; RBAC decides).
ANONYMOUS = Identity(user="system:anonymous", groups=("system:unauthenticated",))
_ANONYMOUS_PATHS = ("/api/v1/namespaces/kube-public/configmaps/cluster-info",)
_APPROVAL = "certificatesigningrequests/approval"   # kubectl certificate approve|deny: the conditions


def _anonymous_allowed(request: web.Request) -> bool:
    return request.method == "GET" and request.path.rstrip("/") in _ANONYMOUS_PATHS


_SUBRESOURCE_VERBS = {"exec": "create", "attach": "create", "portforward": "create", "eviction": "create",
                      "binding": "create", "log": "get"}


def rest_attributes(method: str, t: Target, *, watch: bool, query) -> Attributes:
    """Kubernetes' request attributes of a resource request (the verb from the method and the path)."""
    if t.subresource in _SUBRESOURCE_VERBS:
        verb = _SUBRESOURCE_VERBS[t.subresource]
    elif method == "GET":
        verb = "watch" if watch or codec.flag(query, "watch") else "get" if t.name else "list"
    elif method == "DELETE":
        verb = "delete" if t.name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    name = t.name or (selected_name(query.get("fieldSelector", "")) if verb in ("list", "watch") else "")
    return Attributes(verb=verb, resource=t.served.kind.resource, subresource=t.subresource,
                      namespace=t.namespace, name=name, api_group=t.served.group)


_LONG_RUNNING_SUBRESOURCES = {"exec", "attach", "portforward", "proxy"}


def _long_running(attributes: Attributes, query) -> bool:
    """A request the max-in-flight limit does not count (controlplane/api/inflight.py), as
    kube-apiserver's: a watch, exec/attach/port-forward/proxy, a followed log."""
    return (attributes.verb == "watch" or attributes.subresource in _LONG_RUNNING_SUBRESOURCES
            or (attributes.subresource == "log" and codec.flag(query, "follow")))


def _api_path(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """(group, version, the segments after them) of a path under /api/v1 or /apis/<g>/<v>
    that may name a resource; None for the rest (discovery, the metrics group, ...)."""
    if parts[:1] == ["api"] and len(parts) > 2:
        return "", parts[1], parts[2:]
    if parts[:1] == ["apis"] and len(parts) > 3 and parts[1] != metrics.GROUP and tuple(parts[1:]) != _SSAR:
        return parts[1], parts[2], parts[3:]
    return None


def parse_target(parts: list[str], *, group: str, version: str) -> tuple[Target | None, bool]:
    """(Target, watch prefix) for the path segments after /api/v1 or /apis/<g>/<v>;
    (None, _) when they name no served resource."""
    watch = bool(parts) and parts[0] == "watch"
    if watch:
        parts = parts[1:]
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] not in ("status", "finalize"):
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        return None, watch
    served = discovery.lookup(group, version, parts[0])
    if served is None or (namespace and not served.kind.namespaced):
        return None, watch
    return Target(served, namespace, *parts[1:]), watch


class RestServer:
    def __init__(self, *, registry: Registry, proxy: AgentProxy, listen: str, bookmark_seconds: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None, guard: Guard | None = None,
                 also_listen: str = "", inflight: InflightLimits | None = None) -> None:
        self.registry, self.proxy, self.listen = registry, proxy, listen
        self.inflight = inflight   # the max-in-flight limits, shared with the gRPC door; None: unlimited
        self.also_listen = also_listen   # HOST:PORT pods reach it at (--advertise-address), "" = none
        self.ssl_context, self.guard = ssl_context, guard
        self.handlers = ResourceHandlers(registry=registry, bookmark_seconds=bookmark_seconds)
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self._runner: web.AppRunner | None = None
        self._requests: set[asyncio.Task] = set()   # in flight: watches and streams end at stop()
        # /readyz: what makes the control plane not ready (its informers failing past a bound, issue 15).
        self.readiness: Callable[[], list[str]] = lambda: []
        # serviceaccounts/NAME/token (controlplane/serviceaccounts/tokenrequest.TokenIssuer); None: not served
        self.tokens = None
        self.port = 0

    async def start(self) -> int:
        host, _, port = self.listen.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), ssl_context=self.ssl_context)
        await site.start()
        if self.also_listen:
            extra_host, _, extra_port = self.also_listen.rpartition(":")
            await web.TCPSite(self._runner, extra_host.strip("[]"), int(extra_port),
                              ssl_context=self.ssl_context).start()
        sockets = self._runner.addresses
        self.port = sockets[0][1] if sockets else int(port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and end every request in flight: a watch or a followed
        log would otherwise hold the shutdown until its client goes."""
        for task in list(self._requests):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        seen: list[Target] = []   # the resource addressed, once known: it words the errors
        task = asyncio.current_task()
        if task is not None:
            self._requests.add(task)
        try:
            identity = await self._authenticate(request) if self.guard is not None else None
            REQUESTER.set(identity)
            if identity is not None and self.guard.admission is not None:   # resources.py's writes ask it
                request["admit"] = functools.partial(self.guard.admit, identity)
            return await self._route(request, seen, identity)
        except Overloaded as exc:
            return error_response(ApiError(429, "TooManyRequests", exc.message,
                                           {"retryAfterSeconds": exc.retry_after}),
                                  headers={"Retry-After": str(exc.retry_after)})
        except ApiError as err:
            return error_response(err)
        except Exception as exc:  # noqa: BLE001 - every failure is a Status, never a 500 page
            resource, name = "", ""
            if seen:
                resource, name = seen[0].served.qualified, seen[0].name
            return error_response(from_exception(exc, resource=resource, name=name))
        finally:
            self._requests.discard(task)

    async def _authenticate(self, request: web.Request) -> Identity:
        tls = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        try:
            return await self.guard.authenticator.http(peercert_der=der,
                                                 authorization=request.headers.get("Authorization", ""))
        except Unauthenticated as exc:
            if not der and not request.headers.get("Authorization") and _anonymous_allowed(request):
                return ANONYMOUS
            log.info("unauthorized %s %s from %s: %s", request.method, request.path, request.remote, exc)
            raise _UNAUTHORIZED from None

    async def _authorize(self, identity: Identity | None, attributes: Attributes) -> None:
        if self.guard is None or identity is None:
            return
        message = await self.guard.check(identity, attributes)
        if message is not None:
            details = {"kind": attributes.resource, **({"name": attributes.name} if attributes.name else {})}
            if attributes.api_group:
                details["group"] = attributes.api_group
            raise ApiError(403, "Forbidden", message, details)

    async def _access_review(self, request: web.Request, identity: Identity | None) -> web.StreamResponse:
        """POST selfsubjectaccessreviews: may the caller do what the spec says (`kubectl auth can-i`)."""
        review = codec.parse_body(await request.read(), request.headers.get("Content-Type", "application/json"))
        spec = review.get("spec") if isinstance(review, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, "BadRequest", "the body is not a SelfSubjectAccessReview (no spec)")
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if ra:
            attributes = Attributes(verb=ra.get("verb", ""), resource=ra.get("resource", ""),
                                    subresource=ra.get("subresource", ""), namespace=ra.get("namespace", ""),
                                    name=ra.get("name", ""), api_group=ra.get("group", ""))
        elif nra:
            attributes = Attributes(verb=nra.get("verb", ""), path=nra.get("path", ""))
        else:
            raise ApiError(422, "Invalid", "SelfSubjectAccessReview.authorization.k8s.io is invalid: "
                                           "spec: Invalid value: one of resourceAttributes or "
                                           "nonResourceAttributes must be set")
        allowed = True
        if self.guard is not None and identity is not None:
            allowed = await self.guard.authorizer.allowed(identity, attributes)
        status = {"allowed": allowed}
        return respond({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                        "metadata": {}, "spec": spec, "status": status}, status=201)

    def _hold(self, request: web.Request, identity: Identity | None, *, long_running: bool = False):
        """The request's max-in-flight slot, taken after authorization as kube-apiserver's filter
        (raises Overloaded); none for a long-running request or system:masters."""
        if self.inflight is None or long_running or (identity is not None and "system:masters" in identity.groups):
            return contextlib.nullcontext()
        return self.inflight.hold(mutating=request.method not in ("GET", "HEAD", "OPTIONS"))

    async def _route(self, request: web.Request, seen: list[Target],
                     identity: Identity | None = None) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = path.strip("/").split("/") if path != "/" else []
        if path == "/readyz":   # health checks are not counted
            problems = self.readiness()
            if problems:   # as Kubernetes' verbose failure: a line per failed check
                body = "".join(f"[-]informer failed: {p}\n" for p in problems) + "readyz check failed\n"
                return web.Response(status=503, text=body)
            return web.Response(text="ok")
        if path in ("/healthz", "/livez"):
            return web.Response(text="ok")
        api = _api_path(parts)
        target, watch = parse_target(api[2], group=api[0], version=api[1]) if api else (None, False)
        if target is None:
            with self._hold(request, identity):
                return await self._non_resource(request, parts, identity)
        seen.append(target)
        attributes = rest_attributes(request.method, target, watch=watch, query=request.query)
        await self._authorize(identity, attributes)
        with self._hold(request, identity, long_running=_long_running(attributes, request.query)):
            return await self._verb(request, target, watch=watch)

    async def _non_resource(self, request: web.Request, parts: list[str],
                            identity: Identity | None) -> web.StreamResponse:
        """Discovery, OpenAPI, /version, the access review and the metrics group."""
        if tuple(parts[1:]) == _SSAR and parts[0] == "apis" and request.method == "POST":
            return await self._access_review(request, identity)
        if parts == ["version"]:
            return respond(discovery.KUBERNETES_VERSION)
        if parts[:1] == ["openapi"]:
            return self._openapi(request, parts[1:])
        if parts in (["api"], ["apis"]) and discovery.wants_aggregated(request.headers.get("Accept", "")):
            listing = discovery.aggregated(core=parts == ["api"], extra=[metrics.aggregated_group()])
            return web.Response(body=codec.encode(listing), headers={"Content-Type": discovery.AGGREGATED_MEDIA,
                                                                    "Vary": "Accept"})
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                return respond(discovery.api_versions())
            group, version = "", parts[1]
        elif parts[:1] == ["apis"]:
            if len(parts) == 1:
                groups = discovery.api_group_list()
                return respond({**groups, "groups": [*groups["groups"], metrics.api_group()]})
            if parts[1] == metrics.GROUP:   # not stored objects: the agents' stats (kubectl top)
                if len(parts) == 2:
                    return respond({"kind": "APIGroup", "apiVersion": "v1", **metrics.api_group()})
                if parts[2] != metrics.VERSION:
                    raise _NOT_FOUND
                if len(parts) == 3:
                    return respond(metrics.resource_list())
                tail = parts[3:]
                namespace, tail = (tail[1], tail[2:]) if tail[0] == "namespaces" and len(tail) > 2 else ("", tail)
                await self._authorize(identity, Attributes(verb="get" if len(tail) > 1 else "list", resource=tail[0],
                                                     name="/".join(tail[1:]), api_group=metrics.GROUP,
                                                     namespace=namespace))
                return await metrics.serve(request, parts[3:], registry=self.registry, proxy=self.proxy)
            if len(parts) == 2:
                found = discovery.api_group(parts[1])
                if found is None:
                    raise _NOT_FOUND
                return respond(found)
            group, version = parts[1], parts[2]
        else:
            raise _NOT_FOUND
        if len(parts) > (2 if group == "" else 3):
            raise _NOT_FOUND
        found = discovery.resource_list(group, version)
        if found is None:
            raise _NOT_FOUND
        return respond(found)

    async def _verb(self, request: web.Request, t: Target, *, watch: bool) -> web.StreamResponse:
        h = self.handlers
        method = request.method
        if not t.name:
            table: dict[str, Callable[[web.Request, Target], Awaitable[web.StreamResponse]]] = {
                "GET": h.watch if watch else h.list, "POST": h.create, "DELETE": h.delete_collection}
        elif not t.subresource:
            table = {"GET": h.get, "PUT": h.update, "PATCH": h.patch, "DELETE": h.delete}
        elif t.subresource == "status" and t.served.has_status or t.subresource == "scale" and t.served.scalable:
            table = {"GET": h.get, "PUT": h.update, "PATCH": h.patch}
        elif f"{t.served.resource}/{t.subresource}" == _APPROVAL:
            table = {"GET": h.get, "PUT": h.update}
        elif (f"{t.served.resource}/{t.subresource}" in discovery.LOG_SUBRESOURCES) and method == "GET":
            return await podlogs.logs(request, t, proxy=self.proxy)
        elif t.served.kind.name == "Pod" and t.subresource in ("exec", "attach") and method in ("GET", "POST"):
            return await streams.exec_ws(request, t, proxy=self.proxy, attach=t.subresource == "attach")
        elif t.served.kind.name == "Pod" and t.subresource == "portforward" and method in ("GET", "POST"):
            return await portforward.portforward_ws(request, t, proxy=self.proxy)
        elif f"{t.served.resource}/{t.subresource}" in discovery.EVICTION_SUBRESOURCES and method == "POST":
            return await h.evict(request, t)
        elif f"{t.served.resource}/{t.subresource}" in discovery.TOKEN_SUBRESOURCES and method == "POST":
            return await self._token(request, t)
        else:
            raise _NOT_FOUND
        handler = table.get(method)
        if handler is None:
            raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                                                    f"resource ({method} {t.served.qualified})")
        return await handler(request, t)

    async def _token(self, request: web.Request, t: Target) -> web.StreamResponse:
        """POST serviceaccounts/NAME/token (`kubectl create token`): 201 with status.token."""
        if self.tokens is None:
            raise ApiError(503, "ServiceUnavailable", "this API server issues no ServiceAccount tokens "
                                                      "(no --service-account-signing-key-file)")
        from google.protobuf import json_format
        from proto.skiff.v1 import serviceaccounts_pb2
        body = codec.parse_body(await request.read(), request.headers.get("Content-Type", "application/json"))
        if not isinstance(body, dict) or body.get("kind") not in (None, "", "TokenRequest"):
            raise ApiError(400, "BadRequest", "the body of serviceaccounts/token must be an "
                                              "authentication.k8s.io/v1 TokenRequest")
        wanted = serviceaccounts_pb2.TokenRequest()
        try:
            json_format.ParseDict({k: v for k, v in body.items() if k != "status"}, wanted,
                                  ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise ApiError(400, "BadRequest", f"TokenRequest: {exc}") from None
        issued = await self.tokens.create(t.namespace, t.name, wanted)
        out = json_format.MessageToDict(issued)
        out["spec"]["expirationSeconds"] = int(issued.spec.expiration_seconds)
        out["metadata"].setdefault("creationTimestamp", None)
        return respond(out, status=201)

    def _openapi(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if parts == ["v2"]:
            accept = request.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise ApiError(406, "NotAcceptable", "only application/json is served for /openapi/v2")
            return web.Response(body=openapi.v2_document(), content_type="application/json")
        if parts == ["v3"]:
            return web.Response(body=openapi.v3_index(), content_type="application/json")
        if parts[:1] == ["v3"]:
            doc = openapi.v3_document("/".join(parts[1:]))
            if doc is not None:
                return web.Response(body=doc, content_type="application/json")
        raise _NOT_FOUND
