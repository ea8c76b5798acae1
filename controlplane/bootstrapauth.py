"""Bearer-token authentication of bootstrap tokens (issue 12, decision 36), as
kube-apiserver's `--enable-bootstrap-token-auth`: `Authorization: Bearer
<id>.<secret>` is user `system:bootstrap:<id>` in `system:bootstrappers` (and
the token's auth-extra-groups) while the Secret `bootstrap-token-<id>` in
kube-system holds that secret, allows authentication and has not expired.

One link of controlplane/auth.py's token chain: a credential that is not of a
bootstrap token's shape is another link's (None); one that is but fails is
refused with the reason (logged with the token's id, never its secret).
"""
from __future__ import annotations

import datetime
import hmac
from typing import Callable

from controlplane.auth import Unauthenticated
from skiff import bootstraptoken as bt
from skiff.api import kinds
from skiff.pki import Identity


class BootstrapTokenAuthenticator:
    def __init__(self, store, *, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))

    async def authenticate(self, token: str) -> Identity | None:
        from controlplane.store.interface import NotFound
        match = bt.TOKEN_RE.match(token)
        if not match:
            return None
        token_id, secret = match.groups()
        try:
            stored = await self.store.get(kinds.kind_named("Secret"), bt.NAMESPACE, bt.SECRET_PREFIX + token_id)
            known = bt.from_secret(stored.metadata.name, stored.type, dict(stored.data))
        except (NotFound, bt.TokenError):
            known = None
        if known is None or not hmac.compare_digest(known.secret, secret):
            raise Unauthenticated(f"bootstrap token {token_id}: unknown token id or wrong secret")
        if known.expired(self.now()):
            raise Unauthenticated(f"bootstrap token {token_id}: expired at {bt.format_time(known.expiration)}")
        if "authentication" not in known.usages:
            raise Unauthenticated(f"bootstrap token {token_id}: not marked for authentication")
        return Identity(user=known.user, groups=(bt.GROUP, *(g for g in known.groups if g != bt.GROUP)))
