"""Kubernetes' REST API on the control plane: a translation layer over the
same Registry the gRPC service calls (controlplane/api/registry.py), so kubectl
and Kubernetes' client libraries manage Skiff's objects with the same
validation, admission, compare-and-swap and watch semantics as `skiff`.

    server.py     aiohttp app: routing, every exception -> a Status
    resources.py  the verbs (get/list/watch/create/update/patch/delete/...) onto Registry
    podlogs.py    pods/log through the agent proxy
    streams.py    pods/exec and pods/attach over WebSockets (v5.channel.k8s.io)
    portforward.py  pods/portforward over WebSockets: v4 channels per port, or SPDY tunnelled (kubectl)
    spdy.py       SPDY/3.1 framing (zlib header blocks with its dictionary) for kubectl's port-forward
    codec.py      bodies -> typed objects through the manifest parser; query parameters
    tables.py     meta.k8s.io Table from the kind's printer columns
    discovery.py  /api, /apis and the resource lists from the kinds registry
    openapi.py    OpenAPI v2/v3 from the proto descriptors
    status.py     metav1.Status and the errors -> reason/code map
"""
from controlplane.rest.server import RestServer

__all__ = ["RestServer"]
