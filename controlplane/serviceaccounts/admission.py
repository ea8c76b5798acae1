"""Kubernetes' ServiceAccount admission plug-in, for Pods (decision 35): an
AdmissionPlugin of the registry (`admit(old, new)`), enabled on a secure API
server (one that signs tokens).

At create:
  - `spec.serviceAccountName` defaults to `default` (and `serviceAccount`, its
    deprecated twin, follows it);
  - the ServiceAccount must exist, else the pod is refused as Kubernetes words
    it: `pods "p" is forbidden: error looking up service account NS/NAME:
    serviceaccount "NAME" not found` (the `default` one is waited for a few
    seconds: a namespace just made gets it from the controller a moment later);
  - unless automountServiceAccountToken says no (the pod's field, else the
    account's), a projected volume `kube-api-access-XXXXX` is added — a bound
    token (expirationSeconds 3607, path `token`), `ca.crt` from the namespace's
    `kube-root-ca.crt` ConfigMap, `namespace` from the downward API — and
    mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
    container and init container that does not mount something there already.
At update (a pod's spec is immutable): a manifest applied again without those
defaults keeps the ones the pod got.
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

from google.protobuf.message import Message

from controlplane.api.errors import Forbidden
from controlplane.api.informers import NotReady
from controlplane.store.interface import NotFound
from proto.skiff.v1 import types_pb2
from skiff.api.kinds import serviceaccount

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607          # Kubernetes' admission: an hour, and a little, so a kubelet refreshes
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # utilrand.String's
_DEFAULT_WAIT = (0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0)   # ~5.5 s for the controller to make `default`


def api_access_volume(name: str) -> types_pb2.Volume:
    volume = types_pb2.Volume(name=name)
    projected = volume.projected
    projected.default_mode = 0o644
    token = projected.sources.add().service_account_token
    token.expiration_seconds, token.path = TOKEN_EXPIRATION_SECONDS, "token"
    ca = projected.sources.add().config_map
    ca.name = ROOT_CA_CONFIGMAP
    ca.items.add(key="ca.crt", path="ca.crt")
    ns = projected.sources.add().downward_api.items.add(path="namespace")
    ns.field_ref.api_version, ns.field_ref.field_path = "v1", "metadata.namespace"
    return volume


def _containers(spec: Message):
    return [*spec.init_containers, *spec.containers]


def _api_access_name(spec: Message) -> str:
    return next((v.name for v in spec.volumes if v.name.startswith(VOLUME_PREFIX)), "")


class ServiceAccountAdmission:
    """`informers`: the API server's (`registry.informers`): the account is read from its cached
    lister, and from `store` only when the cache lacks it (an account created an instant ago, the
    cache one watch event behind; or the cache not listed yet). Without them, always the store."""

    def __init__(self, *, store: Any, informers: Any = None,
                 default_wait: tuple[float, ...] = _DEFAULT_WAIT) -> None:
        self.store, self.informers, self.default_wait = store, informers, default_wait

    async def admit(self, old: Message | None, new: Message) -> None:
        spec = new.spec
        if old is not None:
            self._keep(new, old)
            return
        name = spec.service_account_name or spec.service_account or serviceaccount.DEFAULT_NAME
        spec.service_account_name = spec.service_account = name
        sa = await self._account(new, name)
        if not serviceaccount.automount(sa, spec):
            return
        if any(m.mount_path.rstrip("/") == MOUNT_PATH for c in _containers(spec) for m in c.volume_mounts):
            return   # the pod mounts its own token (Kubernetes: then it adds nothing)
        taken = {v.name for v in spec.volumes}
        volume_name = VOLUME_PREFIX + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        while volume_name in taken:
            volume_name = VOLUME_PREFIX + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        spec.volumes.append(api_access_volume(volume_name))
        for container in _containers(spec):
            container.volume_mounts.add(name=volume_name, mount_path=MOUNT_PATH, read_only=True)

    async def _account(self, pod: Message, name: str) -> Message:
        namespace = pod.metadata.namespace or "default"
        cached = await self._cached(namespace, name)
        if cached is not None:
            return cached
        waits = self.default_wait if name == serviceaccount.DEFAULT_NAME else ()
        for wait in (*waits, None):
            try:
                return await self.store.get(serviceaccount.KIND, namespace, name)
            except NotFound:
                if wait is None:
                    break
                await asyncio.sleep(wait)
        raise Forbidden(f'pods "{pod.metadata.name}" is forbidden: error looking up service account '
                        f'{namespace}/{name}: serviceaccount "{name}" not found')

    async def _cached(self, namespace: str, name: str) -> Message | None:
        if self.informers is None:
            return None
        try:
            return (await self.informers.lister(serviceaccount.KIND.name)).get_named(namespace, name)
        except NotReady:
            return None

    @staticmethod
    def _keep(new: Message, old: Message) -> None:
        spec, was = new.spec, old.spec
        if not spec.service_account_name:
            spec.service_account_name = was.service_account_name
        if not spec.service_account:
            spec.service_account = was.service_account
        volume = _api_access_name(was)
        if not volume or any(v.name == volume for v in spec.volumes):
            return
        spec.volumes.extend(v for v in was.volumes if v.name == volume)
        old_mounts = {c.name: [m for m in c.volume_mounts if m.name == volume] for c in _containers(was)}
        for container in _containers(spec):
            if not any(m.name == volume for m in container.volume_mounts):
                container.volume_mounts.extend(old_mounts.get(container.name, []))
