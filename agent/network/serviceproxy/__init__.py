"""The service proxy: every node's ClusterIP/NodePort/LoadBalancer DNAT in nftables.

`model` (ServicePort, Endpoint, NodeView, endpoint selection), `render` (pure:
units of chains and map elements, full and incremental scripts), `proxy`
(ServiceProxy: one `nft -f -` transaction per sync), `controller` (the agent's
informers to ServicePorts, rate-limited syncs). kube-proxy's nftables mode is
the model; docs/architecture.md, decision 25, says where Skiff differs and why.
"""
from agent.network.serviceproxy.model import Endpoint, NodeView, ServicePort
from agent.network.serviceproxy.proxy import ServiceProxy, SyncResult

__all__ = ["Endpoint", "NodeView", "ServicePort", "ServiceProxy", "SyncResult"]
