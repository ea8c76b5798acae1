"""ServiceAccount tokens for projected volumes, as kubelet's token manager
(decision 35): a pod's `serviceAccountToken` projection (the
kube-api-access-XXXXX volume admission adds) gets a token bound to the pod,
asked of the API (`create_token`, serviceaccounts/NAME/token, as the node).

    prefetch(pod)   before the pod's volumes are written: a token for each
                    projection that has none yet, or whose current one is due —
                    older than 80 % of its lifetime or than 24 h (kubelet's
                    rule) — and a wake-up (`on_due(uid)`) scheduled for when the
                    new one will be due, so the file is rewritten before it expires
    token(pod, src) the token to write now (None: none could be had; `error`
                    says why, for the FailedMount event)
    forget(uid)     the pod is gone: its tokens and wake-ups too

Tokens live only in memory and in the pod's tmpfs volume; they are never logged.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from proto.skiff.v1 import types_pb2

REFRESH_FRACTION = 0.8
MAX_AGE_SECONDS = 24 * 3600


@dataclass
class _Token:
    value: bytes
    issued: float
    expires: float

    def due_at(self) -> float:
        return self.issued + min((self.expires - self.issued) * REFRESH_FRACTION, MAX_AGE_SECONDS)


def _key(pod: types_pb2.Pod, src: types_pb2.ServiceAccountTokenProjection) -> tuple:
    expiration = src.expiration_seconds if src.HasField("expiration_seconds") else 3600
    return (pod.metadata.uid, src.audience, expiration)


def projections(pod: types_pb2.Pod) -> list[types_pb2.ServiceAccountTokenProjection]:
    return [s.service_account_token for v in pod.spec.volumes if v.HasField("projected")
            for s in v.projected.sources if s.HasField("service_account_token")]


class TokenManager:
    def __init__(self, *, client: Any, on_due: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self.client, self.on_due, self.clock = client, on_due, clock
        self._tokens: dict[tuple, _Token] = {}
        self._errors: dict[tuple, str] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    async def prefetch(self, pod: types_pb2.Pod) -> None:
        now = self.clock()
        for src in projections(pod):
            key = _key(pod, src)
            current = self._tokens.get(key)
            if current is not None and now < current.due_at():
                continue
            try:
                issued = await self.client.create_token(
                    pod.spec.service_account_name or "default", pod.metadata.namespace or "default",
                    audiences=(src.audience,) if src.audience else (), expiration_seconds=key[2],
                    bound_kind="Pod", bound_name=pod.metadata.name, bound_uid=pod.metadata.uid)
            except Exception as exc:  # noqa: BLE001 - any failure is the volume's, retried with the pod
                self._errors[key] = getattr(exc, "message", None) or str(exc)
                continue
            self._errors.pop(key, None)
            token = _Token(value=issued.status.token.encode(), issued=now,
                           expires=float(issued.status.expiration_timestamp.seconds))
            self._tokens[key] = token
            self._wake(pod.metadata.uid, token.due_at() - now)

    def token(self, pod: types_pb2.Pod, src: types_pb2.ServiceAccountTokenProjection) -> bytes | None:
        token = self._tokens.get(_key(pod, src))
        if token is None or self.clock() >= token.expires:
            return None
        return token.value

    def error(self, pod: types_pb2.Pod, src: types_pb2.ServiceAccountTokenProjection) -> str:
        return self._errors.get(_key(pod, src), "no token yet")

    def forget(self, uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
        for key in [k for k in self._errors if k[0] == uid]:
            del self._errors[key]
        timer = self._timers.pop(uid, None)
        if timer is not None:
            timer.cancel()

    def _wake(self, uid: str, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        timer = self._timers.get(uid)
        if timer is not None and timer.when() <= loop.time() + max(delay, 0.0):
            return   # an earlier wake-up is set: it refreshes this one too
        if timer is not None:
            timer.cancel()
        self._timers[uid] = loop.call_later(max(delay, 0.0), self._due, uid)

    def _due(self, uid: str) -> None:
        self._timers.pop(uid, None)
        self.on_due(uid)
