"""Pod networking: node bridge, per-pod veth, persisted IPAM, hostPorts in nftables.

The public surface is `PodNetworkManager` and its data types; the submodules
(links, state, nftables, hostports) are its parts.
"""
from agent.network.manager import PodNetworkManager
from agent.network.types import HostPortInUse, NetworkError, PodAddress, PortMapping, veth_name

__all__ = ["HostPortInUse", "NetworkError", "PodAddress", "PodNetworkManager", "PortMapping", "veth_name"]
