"""The TokenRequest subresource, `POST serviceaccounts/NAME/token` (REST) and
`Api.CreateToken` (gRPC), as Kubernetes' TokenREST:

    the ServiceAccount must exist (404 otherwise); expirationSeconds defaults to
    3600 and may not be under 600; audiences default to the API server's own;
    a boundObjectRef (Pod or Secret) must exist with its uid, and a Pod must run
    as this ServiceAccount; the token then carries the account's and the pod's
    uids, so it stops authenticating once either is gone; a node (NodeRestriction) may only ask for
    a token bound to a pod on itself.

The token is signed by `TokenSigner` (tokens.py); the request is answered with
status.token and status.expirationTimestamp.
"""
from __future__ import annotations

from typing import Any, Iterable

from controlplane.api.errors import Forbidden, Invalid
from controlplane.auth import REQUESTER
from controlplane.nodeauthorizer import node_name
from controlplane.serviceaccounts.tokens import DEFAULT_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, TokenSigner
from controlplane.store.interface import Conflict
from proto.skiff.v1 import serviceaccounts_pb2
from skiff.api import kinds
from skiff.api.kinds import serviceaccount

_BOUND_KINDS = ("Pod", "Secret")
MAX_EXPIRATION_SECONDS = 2 ** 32   # Kubernetes' validation bound


def _node_restriction(requester, bound_kind: str, bound) -> None:
    """Kubernetes' NodeRestriction for TokenRequests: a node's token is bound to a pod on that node."""
    node = node_name(requester) if requester is not None else None
    if node is None:
        return
    if bound_kind != "Pod":
        raise Forbidden(f'node "{node}" is not allowed to request a token that is not bound to a pod')
    if bound.spec.node_name != node:
        raise Forbidden(f'node "{node}" is not allowed to request a token bound to a pod scheduled on a '
                        f'different node')


class TokenIssuer:
    def __init__(self, *, signer: TokenSigner, store: Any, audiences: Iterable[str] = (),
                 cacher: Any = None) -> None:
        self.signer, self.store = signer, store
        self.audiences = tuple(audiences) or (signer.issuer,)
        # The API server's watch cache (controlplane/store/cacher.py), once it has one: a node asks
        # for a token bound to each pod it starts, and that pod is in the cache.
        self.cacher = cacher

    async def create(self, namespace: str, name: str,
                     request: serviceaccounts_pb2.TokenRequest) -> serviceaccounts_pb2.TokenRequest:
        sa = await self.store.get(serviceaccount.KIND, namespace, name)   # NotFound: serviceaccounts "x" not found
        spec = request.spec
        seconds = spec.expiration_seconds if spec.HasField("expiration_seconds") else DEFAULT_EXPIRATION_SECONDS
        if seconds < MIN_EXPIRATION_SECONDS:
            raise Invalid(f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less "
                          f"than 10 minutes", field_path="spec.expirationSeconds")
        if seconds > MAX_EXPIRATION_SECONDS:
            raise Invalid(f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration larger "
                          f"than 2^32 seconds", field_path="spec.expirationSeconds")
        pod_name = pod_uid = ""
        bound = None
        ref = spec.bound_object_ref
        if ref.kind or ref.name:
            if ref.kind not in _BOUND_KINDS:
                raise Invalid(f'spec.boundObjectRef.kind: Unsupported value: "{ref.kind}": supported values: '
                              f'"Pod", "Secret"', field_path="spec.boundObjectRef.kind")
            bound = await self._bound_object(kinds.kind_named(ref.kind), namespace, ref)
            if ref.uid and ref.uid != bound.metadata.uid:
                raise Conflict(f"the UID in the bound object reference ({ref.uid}) does not match the UID in "
                               f"record. The object might have been deleted and then recreated")
            if ref.kind == "Pod":
                runs_as = bound.spec.service_account_name or bound.spec.service_account or serviceaccount.DEFAULT_NAME
                if runs_as != name:
                    raise Invalid(f'cannot bind token for serviceaccount "{name}" to pod running with different '
                                  f'serviceaccount name.', field_path="spec.boundObjectRef")
                pod_name, pod_uid = bound.metadata.name, bound.metadata.uid
        _node_restriction(REQUESTER.get(), ref.kind if bound is not None else "", bound)
        audiences = list(spec.audiences) or list(self.audiences)
        token, expires = self.signer.sign(namespace=namespace, name=name, uid=sa.metadata.uid, audiences=audiences,
                                          expiration_seconds=seconds, pod_name=pod_name, pod_uid=pod_uid)
        out = serviceaccounts_pb2.TokenRequest(api_version="authentication.k8s.io/v1", kind="TokenRequest")
        out.metadata.CopyFrom(request.metadata)
        out.metadata.name, out.metadata.namespace = name, namespace
        out.spec.CopyFrom(spec)
        out.spec.audiences[:] = audiences
        out.spec.expiration_seconds = seconds
        out.status.token = token
        out.status.expiration_timestamp.FromSeconds(expires)
        return out

    async def _bound_object(self, kind: Any, namespace: str, ref: Any) -> Any:
        """The object the token is bound to: the watch cache's when it is that very object (the
        reference names its uid) and, a pod, already bound to a node (the node a uid is bound
        to never changes); else the store's. A token outliving its pod is refused when it is
        used (controlplane/serviceaccounts/authenticator.py), so the cache decides nothing the
        store would not."""
        if self.cacher is not None and ref.uid:
            cached = self.cacher.peek(kind, namespace, ref.name)
            if cached is not None and cached.metadata.uid == ref.uid and (kind.name != "Pod" or cached.spec.node_name):
                return cached
        return await self.store.get(kind, namespace, ref.name)
