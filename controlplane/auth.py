"""Who is asking, and may they (issue 12, decision 32): the API server's
authentication and authorization, shared by the gRPC service and the REST
front door. Only in secure mode (`skiff-controlplane --client-ca-file`); without
it the server answers everyone, as before.

Authentication, as kube-apiserver's chain:
  - a client certificate the cluster CA signed: user = CN, groups = O (the TLS
    layer has verified it; gRPC requires one, REST asks for one);
  - `Authorization: Bearer T` (REST header; gRPC metadata `authorization`),
    asked of each `TokenAuthenticator` of the chain in turn: the static token
    file, ServiceAccount JWTs (controlplane/serviceaccounts/authenticator.py),
    and whatever else is added with `add_token_authenticator` (bootstrap
    tokens); the first to know the token decides, and a token identity is also
    in system:authenticated;
  - nothing else: anonymous requests are refused (401 / UNAUTHENTICATED).

Authorization decides every request from its attributes (user, verb, API group,
resource, subresource, namespace, name), as Kubernetes' authorizer chain:
  - system:masters may do anything (the admin and the control plane's own client);
  - system:nodes: the node authorizer (controlplane/nodeauthorizer.py): only the
    Secrets and ConfigMaps its pods name, writes to its own Node;
  - RBAC (controlplane/rbac.py): the roles bound to the user or their groups;
  - nothing else: refused with Kubernetes' wording.
"""
from __future__ import annotations

import functools
import inspect
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol

from cryptography import x509

from skiff import pki
from skiff.pki import Identity

log = logging.getLogger(__name__)
# Who is making the request being served (set by the gRPC guard and the REST door once authenticated; None
# on an insecure server): what request-dependent checks inside a verb read (a node's TokenRequest, decision 35).
REQUESTER: ContextVar["Identity | None"] = ContextVar("skiff_requester", default=None)


class Unauthenticated(Exception):
    """No usable credential; the message says which was missing or wrong."""


@dataclass(frozen=True)
class Attributes:
    """What a request does, as Kubernetes' authorizer.Attributes."""
    verb: str
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    api_group: str = ""
    path: str = ""   # a non-resource request (/version, /api, /openapi/v2 ...)


def forbidden_message(identity: Identity, a: Attributes) -> str:
    """Kubernetes' wording: `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in
    the namespace "default"`."""
    if a.path:
        return f'forbidden: User "{identity.user}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    subject = f'{a.resource} "{a.name}"' if a.name else a.resource
    where = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    return (f'{subject} is forbidden: User "{identity.user}" cannot {a.verb} resource "{resource}" '
            f'in API group "{a.api_group}"{where}')


# ------------------------------------------------------------ authentication

AUTHENTICATED = "system:authenticated"


class TokenAuthenticator(Protocol):
    """One link of the bearer-token chain: the identity a token proves, None when the token is not of
    this kind (the next link is asked), Unauthenticated (with the reason) when it is but is not good."""

    async def authenticate(self, token: str) -> Identity | None: ...


class StaticTokens:
    """kube-apiserver's --token-auth-file."""

    def __init__(self, tokens: Mapping[str, Identity]) -> None:
        self.tokens = tokens

    async def authenticate(self, token: str) -> Identity | None:
        return self.tokens.get(token)


class Authenticator:
    def __init__(self, *, tokens: Mapping[str, Identity] | None = None) -> None:
        self.tokens = dict(tokens or {})
        self.token_authenticators: list[TokenAuthenticator] = [StaticTokens(self.tokens)]

    @classmethod
    def from_token_file(cls, path: str) -> "Authenticator":
        return cls(tokens=pki.read_token_file(Path(path)) if path else {})

    def add_token_authenticator(self, link: TokenAuthenticator) -> None:
        self.token_authenticators.append(link)

    def certificate(self, pem: bytes) -> Identity:
        identity = _pem_identity(pem)
        if not identity.user:
            raise Unauthenticated("the client certificate has no common name")
        return identity

    async def bearer(self, header: str) -> Identity:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header is not `Bearer <token>`")
        for link in self.token_authenticators:
            identity = await link.authenticate(token)
            if identity is not None:
                groups = identity.groups if AUTHENTICATED in identity.groups else (*identity.groups, AUTHENTICATED)
                return Identity(user=identity.user, groups=groups)
        raise Unauthenticated("invalid bearer token")

    def grpc(self, context: Any) -> Identity:
        """The peer's verified client certificate (gRPC has checked it against the CA)."""
        auth = context.auth_context() or {}
        pems = auth.get("x509_pem_cert") or []
        if pems:
            return self.certificate(pems[0])
        raise Unauthenticated("no client certificate")

    async def grpc_request(self, context: Any) -> Identity:
        """A verified client certificate, else the metadata `authorization: Bearer T`."""
        auth = context.auth_context() or {}
        if auth.get("x509_pem_cert"):
            return self.grpc(context)
        header = dict(context.invocation_metadata() or ()).get("authorization", "")
        if header:
            return await self.bearer(header)
        raise Unauthenticated("no client certificate or bearer token")

    async def http(self, *, peercert_der: bytes | None, authorization: str) -> Identity:
        """A verified client certificate (the TLS layer checked it), else a bearer token."""
        if peercert_der:
            identity = _der_identity(peercert_der)
            if identity.user:
                return identity
        if authorization:
            return await self.bearer(authorization)
        raise Unauthenticated("no client certificate or bearer token")


# The TLS layer has verified the certificate; its identity is a function of its bytes. Parsing
# X.509 on every call was ~5 % of the control plane's CPU with 100 nodes' agents calling
# (py-spy on bench/pod_startup.py --only hollow); a client presents the same certificate on each.
@functools.lru_cache(maxsize=4096)
def _pem_identity(pem: bytes) -> Identity:
    return pki.identity_of(x509.load_pem_x509_certificate(pem))


@functools.lru_cache(maxsize=4096)
def _der_identity(der: bytes) -> Identity:
    return pki.identity_of(x509.load_der_x509_certificate(der))


# ------------------------------------------------------------ authorization

# True allow, False deny, None no opinion; a rule may be async (RBAC reads the store).
Rule = Callable[[Identity, Attributes], "bool | None | Awaitable[bool | None]"]


def masters(identity: Identity, _a: Attributes) -> bool | None:
    return True if pki.MASTERS in identity.groups else None


def _nodes(identity: Identity, _a: Attributes) -> bool | None:
    # Broad this session (what agent/ does today); the node authorizer narrows it.
    return True if pki.NODES in identity.groups and identity.user.startswith("system:node:") else None


def default_rules() -> list[Rule]:
    """system:masters, then system:nodes broadly (what the control plane uses instead: masters, the node
    authorizer of controlplane/nodeauthorizer.py, then RBAC's rule of controlplane/rbac.py)."""
    return [masters, _nodes]


class Authorizer:
    """The first rule with an opinion decides; none: forbidden."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules: list[Rule] = rules if rules is not None else default_rules()

    async def allowed(self, identity: Identity, attributes: Attributes) -> bool:
        for rule in self.rules:
            decision = rule(identity, attributes)
            if inspect.isawaitable(decision):
                decision = await decision
            if decision is not None:
                return decision
        return False


@dataclass
class Guard:
    """Authentication and authorization together: what the servers call."""
    authenticator: Authenticator
    authorizer: Authorizer
    # Admission that needs the requester and the written object (controlplane/requestadmission.py):
    # (identity, attributes, obj) -> None, or the Forbidden message; it may fill in obj (a CSR's requester).
    admission: "Callable[[Identity, Attributes, Any], Awaitable[str | None]] | None" = None

    async def admit(self, identity: Identity, attributes: Attributes, obj: Any) -> str | None:
        if self.admission is None:
            return None
        message = await self.admission(identity, attributes, obj)
        if message is not None:
            log.info("forbidden by admission: %s (user %s)", message, identity.user)
        return message

    async def check(self, identity: Identity, attributes: Attributes) -> str | None:
        """None when allowed; else the Forbidden message (logged with the identity)."""
        if await self.authorizer.allowed(identity, attributes):
            return None
        message = forbidden_message(identity, attributes)
        log.info("forbidden: %s (groups %s)", message, ",".join(identity.groups) or "-")
        return message
