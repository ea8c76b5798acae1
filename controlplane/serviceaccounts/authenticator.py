"""The ServiceAccount token authenticator: one link of the API server's bearer
token chain (controlplane/auth.py `TokenAuthenticator`), as Kubernetes'
serviceaccount.JWTTokenAuthenticator with its legacy=false validator.

A token that is not a JWT is not ours (None: the next link may know it). A JWT
that fails `TokenVerifier.verify`, whose ServiceAccount is gone or has another
uid now, or whose bound pod is gone (or is another pod of that name) is
refused with the reason (Unauthenticated). Otherwise the identity is
`system:serviceaccount:NS:NAME` in system:serviceaccounts and
system:serviceaccounts:NS (system:authenticated is added by the chain).
"""
from __future__ import annotations

from typing import Any

from controlplane.auth import Unauthenticated
from controlplane.serviceaccounts.tokens import TokenInvalid, TokenVerifier, unverified_subject
from controlplane.store.interface import NotFound
from skiff.api import kinds
from skiff.api.kinds import serviceaccount
from skiff.pki import Identity


class ServiceAccountTokens:
    def __init__(self, verifier: TokenVerifier, store: Any) -> None:
        self.verifier, self.store = verifier, store

    async def authenticate(self, token: str) -> Identity | None:
        if not self.verifier.looks_like_jwt(token):
            return None
        try:
            claims = self.verifier.verify(token)
        except TokenInvalid as exc:
            subject = unverified_subject(token)
            raise Unauthenticated(f"{exc} (a token for {subject})" if subject else str(exc)) from None
        try:
            sa = await self.store.get(serviceaccount.KIND, claims.namespace, claims.name)
        except NotFound:
            raise Unauthenticated(f'serviceaccounts "{claims.name}" not found '
                                  f'(token of {claims.user})') from None
        if claims.uid and sa.metadata.uid != claims.uid:
            raise Unauthenticated(f"service account UID ({sa.metadata.uid}) does not match claim ({claims.uid})")
        if claims.pod_name:
            try:
                pod = await self.store.get(kinds.kind_named("Pod"), claims.namespace, claims.pod_name)
            except NotFound:
                raise Unauthenticated(f'pods "{claims.pod_name}" not found (the pod the token of '
                                      f'{claims.user} is bound to)') from None
            if claims.pod_uid and pod.metadata.uid != claims.pod_uid:
                raise Unauthenticated(f"pod UID ({pod.metadata.uid}) does not match claim ({claims.pod_uid})")
        return Identity(user=claims.user, groups=serviceaccount.groups(claims.namespace))
