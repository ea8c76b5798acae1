"""imagePullSecrets: the credentials a pod names for its images' registries.

A Secret of type `kubernetes.io/dockerconfigjson` (key `.dockerconfigjson`,
`{"auths": {"<registry>": {"auth": base64(user:password)}}}`, as `kubectl
create secret docker-registry` makes it) or the older
`kubernetes.io/dockercfg` (key `.dockercfg`, the `auths` map itself). The
first secret, in the pod's order, with an entry for the image's registry
wins, as kubelet's keyring; the node's own ~/.docker/config.json is the
fallback (agent.images.registry). Missing secrets are skipped, as kubelet
skips them (with a warning event from the caller).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Callable

from google.protobuf.message import Message

from agent.images.reference import DEFAULT_DOMAIN, parse_reference
from agent.images.registry import Credentials
from proto.skiff.v1 import types_pb2

Lookup = Callable[[str, str, str], Message | None]
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"


def _auths(secret: types_pb2.Secret) -> dict:
    try:
        if secret.type == DOCKER_CONFIG_JSON:
            return json.loads(secret.data[".dockerconfigjson"]).get("auths", {})
        if secret.type == DOCKER_CFG:
            return json.loads(secret.data[".dockercfg"])
    except (KeyError, ValueError, AttributeError):
        pass
    return {}


def _keys(domain: str) -> list[str]:
    keys = [domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v1/", f"https://{domain}/v2/"]
    if domain == DEFAULT_DOMAIN:
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    return keys


def _credentials(entry: dict) -> Credentials | None:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(username=user, password=password)
    if entry.get("username"):
        return Credentials(username=entry["username"], password=entry.get("password", ""))
    return None


def credentials_for(pod: types_pb2.Pod, image: str, lookup: Lookup) -> tuple[Credentials | None, list[str]]:
    """(the credentials for image's registry from the pod's imagePullSecrets, the secrets not found)."""
    missing: list[str] = []
    if not pod.spec.image_pull_secrets:
        return None, missing
    try:
        domain = parse_reference(image).domain
    except Exception:  # an invalid reference is the puller's to report
        return None, missing
    ns = pod.metadata.namespace or "default"
    for ref in pod.spec.image_pull_secrets:
        secret = lookup("Secret", ns, ref.name)
        if secret is None:
            missing.append(ref.name)
            continue
        auths = _auths(secret)
        for key in _keys(domain):
            if key in auths and (found := _credentials(auths[key])) is not None:
                return found, missing
    return None, missing
