"""The ConfigMaps and Secrets a pod names (env valueFrom / envFrom, configMap /
secret / projected volumes, imagePullSecrets): what its node's agent watches
(agent/configobjects.py) and what the node authorizer lets that node read
(controlplane/nodeauthorizer.py). Pure: a pod in, references out."""
from __future__ import annotations

from proto.skiff.v1 import types_pb2

Ref = tuple[str, str, str]   # (kind, namespace, name)


def references(pod: types_pb2.Pod) -> set[Ref]:
    """Every ConfigMap and Secret the pod names."""
    ns = pod.metadata.namespace or "default"
    refs: set[Ref] = set()
    for c in list(pod.spec.init_containers) + list(pod.spec.containers):
        for env in c.env:
            vf = env.value_from
            if vf.HasField("config_map_key_ref") and vf.config_map_key_ref.name:
                refs.add(("ConfigMap", ns, vf.config_map_key_ref.name))
            if vf.HasField("secret_key_ref") and vf.secret_key_ref.name:
                refs.add(("Secret", ns, vf.secret_key_ref.name))
        for source in c.env_from:
            if source.HasField("config_map_ref") and source.config_map_ref.name:
                refs.add(("ConfigMap", ns, source.config_map_ref.name))
            if source.HasField("secret_ref") and source.secret_ref.name:
                refs.add(("Secret", ns, source.secret_ref.name))
    for ref in pod.spec.image_pull_secrets:
        if ref.name:
            refs.add(("Secret", ns, ref.name))
    for volume in pod.spec.volumes:
        if volume.HasField("config_map") and volume.config_map.name:
            refs.add(("ConfigMap", ns, volume.config_map.name))
        if volume.HasField("secret") and volume.secret.secret_name:
            refs.add(("Secret", ns, volume.secret.secret_name))
        for source in volume.projected.sources:
            if source.HasField("config_map") and source.config_map.name:
                refs.add(("ConfigMap", ns, source.config_map.name))
            if source.HasField("secret") and source.secret.name:
                refs.add(("Secret", ns, source.secret.name))
    return refs
