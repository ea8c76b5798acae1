"""PodNetworkManager: the agent's one entry point to pod networking.

The runtime pins each pod's network namespace; the agent then calls `attach`
to give it an address, a veth into the node bridge and its hostPorts, and
`detach` when the pod is deleted (the CNI split; see docs/architecture.md,
decision 3). All methods are synchronous and blocking: the agent runs them in
a thread executor. They are safe to call from several threads and processes
at once (the state lock serialises them).

Kernel objects, all named so a leak is visible:
  bridge  `skiff0` (configurable) holding the pod CIDR's first address as gateway
  veths   `skiffv<8 hex of sha256(pod_id)>` on the bridge; the pod end is `eth0`
  nft     table `inet skiff` (configurable), see agent/network/nftables.py
  sysctl  route_localnet=1 and forwarding=1 on the bridge only; the host-wide
          ip_forward is never touched, and the table's forward chain drops
          anything from the bridge bound for another interface, so pod traffic
          never leaves the node. The bridge's own `nf_call_iptables` is on, so
          frames between two of its pods pass the IPv4 hooks (NetworkPolicy).
  uplinks optional (`uplinks=("eth0",)`): interfaces where other nodes' traffic
          to hostPorts arrives. Skiff turns their forwarding on (off again on
          teardown if it was off) and lets only DNAT'd hostPort flows through,
          and, given `cluster_cidr`, pod-to-pod flows between this node's pods
          and the rest of the pod network (the routes: agent/network/routes.py).
  egress  `egress="nat"` (decision 30): pods reach addresses outside the cluster
          masqueraded to the node's address. Forwarding is turned on on the bridge
          and on `egress_uplink` (the interface replies come back on; off again on
          teardown if Skiff turned it on), never host-wide; the table still drops
          whatever else arrives on that uplink. `egress="none"`: decision 9's fence.

Ordering for crash safety (state first on the way in, last on the way out):
  attach: record the allocation -> create veth -> configure the pod -> rules
  detach: delete veth (outside the lock) -> rules without the pod -> drop the allocation
A failure inside attach undoes every step before re-raising.
"""
from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Sequence

from agent.network import conntrack, links, nftables
from agent.network.hostports import host_port_holder
from agent.network.state import (
    NetworkState, PodRecord, StateLock, gateway_of, iter_host_ips,
)
from agent.network.types import (
    HostPortInUse, NetworkError, PodAddress, PortMapping, validate_port_mapping, veth_name,
)

log = logging.getLogger(__name__)

MAX_IFNAME = 15
EGRESS_MODES = ("nat", "none")


class PodNetworkManager:
    def __init__(self, *, pod_cidr: str, state_dir: Path, bridge: str = "skiff0",
                 nft_table: str = "skiff", node_ip: str = "127.0.0.1", uplinks: Sequence[str] = (),
                 cluster_cidr: str = "", mtu: int = 0, egress: str = "none", egress_uplink: str = "",
                 service_cidr: str = "") -> None:
        try:
            network = ipaddress.IPv4Network(pod_cidr)
        except ValueError as exc:
            raise ValueError(f"pod_cidr {pod_cidr!r} is not an IPv4 network: {exc}") from None
        if network.prefixlen > 30:
            raise ValueError(f"pod_cidr {pod_cidr} is too small: it needs at least a /30")
        if not 0 < len(bridge) <= MAX_IFNAME or "skiff" not in bridge:
            raise ValueError(f"bridge name {bridge!r} must contain 'skiff' and be at most {MAX_IFNAME} characters")
        if not nft_table.startswith("skiff") or not nft_table.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"nft_table {nft_table!r} must start with 'skiff' and be alphanumeric, '_' or '-'")
        ipaddress.IPv4Address(node_ip)
        if egress not in EGRESS_MODES:
            raise ValueError(f"egress {egress!r} is not one of {', '.join(EGRESS_MODES)}")
        for uplink in (*uplinks, *([egress_uplink] if egress_uplink else [])):
            if not 0 < len(uplink) <= MAX_IFNAME or "/" in uplink or uplink in (".", "..", "all", "default"):
                raise ValueError(f"uplink {uplink!r} is not an interface name")
        self.uplinks = tuple(uplinks)
        self.egress = egress
        # Where replies to the pods' egress come in: forwarding must be on there too.
        self.egress_uplink = egress_uplink if egress == "nat" else ""
        if service_cidr:
            service_cidr = str(ipaddress.IPv4Network(service_cidr))
        self.mtu = mtu   # the pods' interfaces (a tunnel's overhead taken off); 0: the kernel's default
        self.pod_cidr = str(network)
        self.prefix_len = network.prefixlen
        self.gateway = gateway_of(network)
        self.state_dir = Path(state_dir)
        self.bridge = bridge
        self.nft_table = nft_table
        self.node_ip = node_ip
        if cluster_cidr:
            cluster = ipaddress.IPv4Network(cluster_cidr)
            if not network.subnet_of(cluster):
                raise ValueError(f"pod_cidr {pod_cidr} is not inside cluster_cidr {cluster_cidr}")
            cluster_cidr = str(cluster)
        self._spec = nftables.TableSpec(table=nft_table, bridge=bridge, pod_cidr=self.pod_cidr, node_ip=node_ip,
                                        uplinks=self.uplinks, cluster_cidr=cluster_cidr, egress=egress,
                                        service_cidr=service_cidr, egress_uplink=self.egress_uplink)

    # -- node -------------------------------------------------------------

    def ensure_node_network(self) -> None:
        """Bridge with the gateway address, its sysctls, and the table with the recorded pods' rules."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        links.check_cidr_unused(pod_cidr=self.pod_cidr, bridge=self.bridge)
        links.ensure_bridge(name=self.bridge, gateway=self.gateway, prefix_len=self.prefix_len)
        # 127.0.0.1 hostPorts: after DNAT the packet leaves on the bridge with a
        # loopback source, which the kernel drops as martian unless route_localnet.
        links.set_interface_sysctl(interface=self.bridge, key="route_localnet", value="1")
        with StateLock(self.state_dir) as lock:
            state = lock.load(pod_cidr=self.pod_cidr)
            # The fence goes in before forwarding is turned on, so there is no
            # moment in which the bridge or an uplink routes freely.
            forwarding_on = self._forwarding_interfaces()
            newly_enabled = [u for u in forwarding_on if links.get_interface_sysctl(interface=u, key="forwarding") == "0"
                             and u not in state.forwarding_enabled_on]
            for dropped in [u for u in state.forwarding_enabled_on if u not in forwarding_on]:
                # No longer an uplink in the configuration: undo what Skiff did to it.
                links.set_interface_sysctl(interface=dropped, key="forwarding", value="0", missing_ok=True)
                state.forwarding_enabled_on.remove(dropped)
            state.forwarding_enabled_on.extend(newly_enabled)
            lock.save(state)
            nftables.apply_rules(spec=self._spec, state=state)
            # A pod calling the node's address:hostPort is routed back out of the
            # bridge; forwarding on this interface (not host-wide) allows that.
            for interface in (self.bridge, *forwarding_on):
                links.set_interface_sysctl(interface=interface, key="forwarding", value="1")

    def teardown_node(self) -> None:
        """Remove every pod's veth and allocation, the table and the bridge. Idempotent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateLock(self.state_dir) as lock:
            try:
                state = lock.load(pod_cidr=self.pod_cidr)
            except NetworkError:
                # An unreadable state must not keep `skiff down` from removing
                # the kernel objects; the bridge's ports are found without it.
                log.warning("tearing down %s with unreadable state", self.bridge, exc_info=True)
                state = NetworkState(pod_cidr=self.pod_cidr)
            for pod_id in list(state.pods):
                links.delete_link(name=state.pods[pod_id].veth)
                del state.pods[pod_id]
            for name in links.bridge_ports(bridge=self.bridge):
                links.delete_link(name=name)
            # Forwarding off before the fence goes away.
            for uplink in state.forwarding_enabled_on:
                links.set_interface_sysctl(interface=uplink, key="forwarding", value="0", missing_ok=True)
            state.forwarding_enabled_on.clear()
            nftables.delete_table(table=self.nft_table)
            links.delete_link(name=self.bridge)
            lock.save(state)

    # -- pods -------------------------------------------------------------

    def attach(self, *, pod_id: str, netns_path: Path, ports: Sequence[PortMapping] = ()) -> PodAddress:
        """Give the pod at netns_path an address, a veth and its hostPorts.

        Attaching a pod that is already attached (its veth exists and its
        eth0 in netns_path has the address) keeps both and only updates its
        hostPorts; a recorded pod in a new namespace is rewired with the same
        address. Raises
        HostPortInUse (nothing changed) when a hostPort is taken, NetworkError
        for anything else (everything undone).
        """
        if not pod_id:
            raise ValueError("pod_id must not be empty")
        mappings = [validate_port_mapping(p) for p in ports]
        veth = veth_name(pod_id)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateLock(self.state_dir) as lock:
            state = lock.load(pod_cidr=self.pod_cidr)
            self._check_host_ports(state=state, pod_id=pod_id, mappings=mappings)
            previous = state.pods.get(pod_id)
            if (previous is not None and links.link_exists(name=previous.veth)
                    and links.pod_has_address(netns_path=Path(netns_path), ip=previous.ip)):
                # Already attached (an agent restarted and adopted the pod): keep
                # the veth and the address, so its connections live on; only the
                # hostPorts may change.
                state.pods[pod_id] = PodRecord(ip=previous.ip, veth=previous.veth, ports=mappings)
                nftables.apply_rules(spec=self._spec, state=state)
                lock.save(state)
                return PodAddress(ip=previous.ip, gateway=self.gateway, prefix_len=self.prefix_len)
            if previous is not None:
                # Recorded, but its veth is gone or leads to another namespace (a
                # new sandbox for the same pod): rewire it, keeping the address.
                links.delete_link(name=previous.veth)
            ip = previous.ip if previous is not None else state.allocate_pod_ip()
            state.pods[pod_id] = PodRecord(ip=ip, veth=veth, ports=mappings)
            lock.save(state)
            try:
                links.create_pod_veth(host_name=veth, bridge=self.bridge, netns_path=Path(netns_path), mtu=self.mtu)
                links.configure_pod_interfaces(netns_path=Path(netns_path), ip=ip,
                                               prefix_len=self.prefix_len, gateway=self.gateway, mtu=self.mtu)
                # A pod is in the node's table only by its hostPorts: without any (before or now)
                # the table is unchanged, and an `nft -f` per pod start, under the lock every
                # attach takes in turn, is what bounded the node's start throughput.
                if mappings or (previous is not None and previous.ports):
                    nftables.apply_rules(spec=self._spec, state=state)
            except BaseException:
                self._undo_attach(lock=lock, state=state, pod_id=pod_id, veth=veth)
                raise
        return PodAddress(ip=ip, gateway=self.gateway, prefix_len=self.prefix_len)

    def detach(self, pod_id: str) -> None:
        """Remove the pod's veth, rules and address. Idempotent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Outside the lock: the kernel takes ~20 ms to unregister a veth (RCU grace periods),
        # which under the lock held up every other pod's attach and detach on the node. The
        # order stays veth first, record last (a crash between leaves a record cleanup_orphans drops).
        veth = veth_name(pod_id)
        links.delete_link(name=veth)
        with StateLock(self.state_dir) as lock:
            state = lock.load(pod_cidr=self.pod_cidr)
            record = state.pods.get(pod_id)
            if record is None:
                return
            if record.veth != veth:   # recorded under another name (not by this version)
                links.delete_link(name=record.veth)
            del state.pods[pod_id]
            # The pod was recorded, so the node network was set up: no need to
            # ask nft whether the table exists (a process spawn saved); and a pod
            # without hostPorts is not in the table at all.
            if record.ports:
                nftables.apply_rules(spec=self._spec, state=state)
            _forget_flows(record)
            lock.save(state)

    def cleanup_orphans(self, keep_pod_ids: set[str]) -> list[str]:
        """After a crash: remove veths, rules and allocations of pods not in keep_pod_ids.

        Returns the pod ids whose allocations were removed.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateLock(self.state_dir) as lock:
            state = lock.load(pod_cidr=self.pod_cidr)
            removed = sorted(set(state.pods) - set(keep_pod_ids))
            for pod_id in removed:
                links.delete_link(name=state.pods[pod_id].veth)
            # A kept pod's veth is found by name even if its record was lost.
            kept_veths = {veth_name(p) for p in keep_pod_ids}
            for name in links.bridge_ports(bridge=self.bridge):
                if name not in kept_veths:
                    log.info("removing veth %s on %s that belongs to no kept pod", name, self.bridge)
                    links.delete_link(name=name)
            records = [state.pods.pop(pod_id) for pod_id in removed]
            if removed and nftables.table_exists(table=self.nft_table):
                nftables.apply_rules(spec=self._spec, state=state)
            for record in records:
                _forget_flows(record)
            lock.save(state)
        return removed

    def allocations(self) -> dict[str, str]:
        """pod id -> IP of every recorded pod (for status reporting and tests)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateLock(self.state_dir) as lock:
            return {pod_id: rec.ip for pod_id, rec in lock.load(pod_cidr=self.pod_cidr).pods.items()}

    # -- internals --------------------------------------------------------

    def _forwarding_interfaces(self) -> tuple[str, ...]:
        """The interfaces besides the bridge whose forwarding Skiff needs on."""
        extra = (self.egress_uplink,) if self.egress_uplink and self.egress_uplink not in self.uplinks else ()
        return (*self.uplinks, *extra)

    def _check_host_ports(self, *, state: NetworkState, pod_id: str, mappings: list[PortMapping]) -> None:
        claimed: dict[tuple[str, int, str], str] = {}
        for other_id, record in state.pods.items():
            if other_id == pod_id:
                continue
            for m in record.ports:
                for host_ip in iter_host_ips(m, node_ip=self.node_ip):
                    claimed[(m.protocol, m.host_port, host_ip)] = f"pod {other_id}"
        for m in mappings:
            host_ips = set(iter_host_ips(m, node_ip=self.node_ip))
            for host_ip in host_ips:
                key = (m.protocol, m.host_port, host_ip)
                if key in claimed:
                    raise HostPortInUse(host_port=m.host_port, protocol=m.protocol, holder=claimed[key])
                claimed[key] = f"another mapping of pod {pod_id}"
            for host_ip in sorted(host_ips):
                holder = host_port_holder(protocol=m.protocol, port=m.host_port, host_ip=host_ip)
                if holder is not None:
                    raise HostPortInUse(host_port=m.host_port, protocol=m.protocol, holder=holder)

    def _undo_attach(self, *, lock: StateLock, state: NetworkState, pod_id: str, veth: str) -> None:
        """Roll back a failed attach; errors here are logged so the original one surfaces."""
        try:
            links.delete_link(name=veth)
        except Exception:
            log.exception("rollback of pod %s: deleting veth %s failed", pod_id, veth)
        state.pods.pop(pod_id, None)
        try:
            if nftables.table_exists(table=self.nft_table):
                nftables.apply_rules(spec=self._spec, state=state)
        except Exception:
            log.exception("rollback of pod %s: restoring nftables table %s failed", pod_id, self.nft_table)
        try:
            lock.save(state)
        except Exception:
            log.exception("rollback of pod %s: releasing its address failed", pod_id)


def _forget_flows(record: PodRecord) -> None:
    if any(m.protocol == "UDP" for m in record.ports):
        conntrack.forget_udp_flows_to(pod_ip=record.ip)
