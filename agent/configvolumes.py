"""configMap, secret, downwardAPI and projected volumes: their files, kept current.

Each such volume is a directory under the pod's dir written by
agent.atomicwriter (the `..data` symlink swap), so an update of a ConfigMap,
a Secret or the pod's labels reaches the running containers whole. Secret and
projected volumes live on a tmpfs mounted on that directory (agent.volumes),
so a Secret's bytes never touch the node's disk; configMap and downwardAPI
volumes are plain directories, as in kubelet.

`sync` is called by the pod worker on every reconcile (the agent watches the
objects the pod names, so a change wakes it): it writes a volume only when
its files differ. A missing ConfigMap, Secret or key that is not optional
keeps the pod's containers from starting (`VolumeError`, shown as a
FailedMount event, as kubelet's `MountVolume.SetUp failed`); once a volume has
been written, a later failure leaves its files as they were.
"""
from __future__ import annotations

from pathlib import Path

from agent import atomicwriter
from agent.envvars import EnvContext, field_value, resource_value
from proto.skiff.v1 import types_pb2

DEFAULT_MODE = 0o644
SOURCES = ("config_map", "secret", "downward_api", "projected")
TMPFS_SOURCES = ("secret", "projected")   # may hold Secret data: memory only


class VolumeError(Exception):
    """A volume cannot be set up yet; str() is kubelet's message."""


def is_config_volume(volume: types_pb2.Volume) -> bool:
    return any(volume.HasField(s) for s in SOURCES)


def _keys(kind: str, obj, items, *, optional: bool, name: str, mode: int) -> atomicwriter.Payload:
    if obj is None:
        return {}
    if kind == "ConfigMap":
        data = {k: v.encode() for k, v in obj.data.items()} | dict(obj.binary_data)
    else:
        data = dict(obj.data)
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    out: atomicwriter.Payload = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise VolumeError(f"{kind.lower()} references non-existent config key: {item.key}")
        out[item.path] = (data[item.key], item.mode if item.HasField("mode") else mode)
    return out


def _object(ctx: EnvContext, kind: str, namespace: str, name: str, optional: bool):
    obj = ctx.lookup(kind, namespace, name)
    if obj is None and not optional:
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    return obj


def _downward(pod: types_pb2.Pod, items, ctx: EnvContext, mode: int) -> atomicwriter.Payload:
    out: atomicwriter.Payload = {}
    for item in items:
        if item.HasField("field_ref"):
            value = field_value(pod, item.field_ref.field_path, pod_ip=ctx.pod_ip, host_ip=ctx.host_ip)
        else:
            value = resource_value(pod, pod.spec.containers[0], item.resource_field_ref, ctx.allocatable)
        out[item.path] = (value.encode(), item.mode if item.HasField("mode") else mode)
    return out


def payload(pod: types_pb2.Pod, volume: types_pb2.Volume, ctx: EnvContext) -> atomicwriter.Payload:
    """The files the volume holds now."""
    ns = pod.metadata.namespace or "default"
    if volume.HasField("config_map"):
        src = volume.config_map
        obj = _object(ctx, "ConfigMap", ns, src.name, src.optional)
        return _keys("ConfigMap", obj, src.items, optional=src.optional, name=src.name,
                     mode=src.default_mode if src.HasField("default_mode") else DEFAULT_MODE)
    if volume.HasField("secret"):
        src = volume.secret
        obj = _object(ctx, "Secret", ns, src.secret_name, src.optional)
        return _keys("Secret", obj, src.items, optional=src.optional, name=src.secret_name,
                     mode=src.default_mode if src.HasField("default_mode") else DEFAULT_MODE)
    if volume.HasField("downward_api"):
        src = volume.downward_api
        return _downward(pod, src.items, ctx, src.default_mode if src.HasField("default_mode") else DEFAULT_MODE)
    src = volume.projected
    mode = src.default_mode if src.HasField("default_mode") else DEFAULT_MODE
    out: atomicwriter.Payload = {}
    for source in src.sources:
        if source.HasField("config_map"):
            s = source.config_map
            obj = _object(ctx, "ConfigMap", ns, s.name, s.optional)
            out.update(_keys("ConfigMap", obj, s.items, optional=s.optional, name=s.name, mode=mode))
        elif source.HasField("secret"):
            s = source.secret
            obj = _object(ctx, "Secret", ns, s.name, s.optional)
            out.update(_keys("Secret", obj, s.items, optional=s.optional, name=s.name, mode=mode))
        elif source.HasField("downward_api"):
            out.update(_downward(pod, source.downward_api.items, ctx, mode))
        elif source.HasField("service_account_token"):
            s = source.service_account_token
            token = ctx.token(pod, s) if ctx.token is not None else None
            if token is None:
                reason = ctx.token_error(pod, s) if ctx.token_error is not None else "no token source on this node"
                raise VolumeError(f"failed to fetch token: {reason}")
            out[s.path] = (token, mode)
    return out


def sync(pod: types_pb2.Pod, volume_dir: Path, ctx: EnvContext) -> list[str]:
    """Write every config volume whose files changed; returns the names written.
    Raises VolumeError (naming the volume) for one never written that cannot be yet."""
    written = []
    for volume in pod.spec.volumes:
        if not is_config_volume(volume):
            continue
        target = volume_dir / volume.name
        try:
            files = payload(pod, volume, ctx)
        except VolumeError as exc:
            if atomicwriter.current(target) is not None:
                continue   # keep what the containers have
            raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : {exc}') from None
        if atomicwriter.write(target, files):
            written.append(volume.name)
    return written
