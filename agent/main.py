"""`skiff-agent` / `python -m agent.main`: wiring only.

Parse the command line, attach to the node's zygote (or start it; it is a
process of its own, see agent/runtime/linux/zygote.py), then import
everything else and run the agent (agent.app) under asyncio. SIGTERM/SIGINT
end the agent gracefully and leave every container running, watched by the
zygote: they outlive the agent.
"""
from __future__ import annotations

import logging
import sys
from typing import Sequence

from agent.config import AgentConfig, ConfigError, config_from_args


def _spawn_zygote(config: AgentConfig):
    """The node's zygote: the one a previous agent left running (it watches
    that agent's containers), or a new one."""
    if config.runtime != "linux":
        return None
    from agent.runtime.linux.zygote import Zygote, ZygoteError
    try:
        return Zygote.attach_or_spawn(config.run_dir)
    except (ZygoteError, OSError) as exc:   # e.g. another agent serves this run dir
        raise SystemExit(f"skiff-agent: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
    except ConfigError as exc:
        print(f"skiff-agent: {exc}", file=sys.stderr)
        return 2
    if "--check-config" in (sys.argv[1:] if argv is None else argv):
        return 0   # `skiff up` asks this before it starts etcd and the control plane
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.runtime != "fake":
        # Under systemd's Delegate=yes on a v2 host: the pods' cgroups under the unit's own, the
        # agent in a leaf of it; first, so the zygote and every thread start there too.
        import dataclasses

        from agent.cgroupdelegation import pods_parent
        config = dataclasses.replace(config, cgroup_parent=pods_parent(config.cgroup_parent))
    zygote = _spawn_zygote(config)

    from agent.memory import limit_malloc_arenas
    limit_malloc_arenas()  # before any thread exists (agent.memory)

    import asyncio  # noqa: E402 - everything below may start threads
    import signal

    from agent.app import Agent

    async def run() -> None:
        # netlink's blocking client cannot run on the event loop's thread
        uplink, mtu = await asyncio.to_thread(_pod_network_uplink, config) if config.pod_network != "none" else (None, 0)
        egress_uplink = await asyncio.to_thread(_egress_uplink, config) if config.pod_egress == "nat" else ""
        runtime, images, registry, network_factory = _build_parts(config, zygote, uplink, mtu, egress_uplink)
        agent = Agent(config=config, runtime=runtime, images=images, network_factory=network_factory,
                      registry=registry, routes=_route_table(config, uplink) if network_factory is not None else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        start = asyncio.create_task(agent.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if start.done() and start.exception() is not None:
            stopped.cancel()
            await agent.stop()
            raise start.exception()
        await stopped
        start.cancel()
        logging.getLogger("agent").info("stopping; containers keep running")
        await agent.stop()

    try:
        asyncio.run(run())
    except OSError as exc:  # a port taken, a directory not writable: one line, not a traceback
        print(f"skiff-agent: {exc}", file=sys.stderr)
        return 1
    finally:
        if zygote is not None:
            zygote.close()
    return 0


def _build_parts(config: AgentConfig, zygote, uplink: str | None = None, mtu: int = 0, egress_uplink: str = ""):
    """The runtime, the image resolver, the registry it pulls from and the network factory."""
    if config.runtime == "fake":
        from agent.runtime.fake import FakeImages, FakeRuntime
        return FakeRuntime(state_root=config.run_dir / "fake"), FakeImages(), None, None
    from agent.imagepuller import StoreRegistry
    from agent.images.store import ImageStore
    from agent.runtime.linux.runtime import LinuxRuntime
    runtime = LinuxRuntime(run_dir=config.run_dir, cgroup_parent=config.cgroup_parent,
                           default_pids_limit=config.pids_limit, zygote=zygote)
    from agent.peerimages import ClusterRegistry
    images = ImageStore(root=config.images_dir)
    tls = None
    if config.client_ca_file:   # secure mode: the node's certificate to its peers' registries (decision 33)
        import ssl
        tls = ssl.create_default_context(cafile=config.client_ca_file)
        tls.load_cert_chain(config.tls_cert_file, config.tls_private_key_file)
    registry = ClusterRegistry(store=images, upstream=StoreRegistry(store=images), node_name=config.node_name,
                               tls=tls)
    return runtime, images, registry, _network_factory(config, uplink, mtu, egress_uplink)


def _network_factory(config: AgentConfig, uplink: str | None = None, mtu: int = 0, egress_uplink: str = ""):
    """pod CIDR -> PodNetworkManager, or None without pod networking."""
    if not config.network:
        return None
    try:
        from agent.network import PodNetworkManager
    except ImportError:
        logging.getLogger("agent").warning("agent.network has no PodNetworkManager yet: pods get no network")
        return None

    uplinks = (uplink,) if uplink else ()

    def factory(pod_cidr: str):
        return PodNetworkManager(pod_cidr=pod_cidr, state_dir=config.data_dir / "network", bridge=config.bridge,
                                 nft_table=config.nft_table, node_ip=config.node_ip, uplinks=uplinks,
                                 cluster_cidr=config.cluster_cidr if uplinks else "", mtu=mtu,
                                 egress=config.pod_egress, egress_uplink=egress_uplink,
                                 service_cidr=config.service_cidr)
    return factory


def _egress_uplink(config: AgentConfig) -> str:
    """Where the pods' egress leaves and its replies come back (decision 30): the
    interface of the default route, else the one holding the node IP; "" when
    neither is there (loopback only): forwarding is then needed on the bridge alone."""
    if not config.network or config.runtime == "fake":
        return ""
    from agent.network.links import default_route_interface, interface_with_address
    interface = default_route_interface() or interface_with_address(ip=config.node_ip)
    return "" if interface in (None, "lo") else interface


def _node_interface(config: AgentConfig) -> str:
    """The interface holding --node-ip: where the other nodes are."""
    from agent.network.links import interface_with_address
    interface = interface_with_address(ip=config.node_ip)
    if interface is None:
        raise SystemExit(f"skiff-agent: --pod-network {config.pod_network}: no interface here has the node IP "
                         f"{config.node_ip} (--node-ip)")
    return interface


def _pod_network_uplink(config: AgentConfig) -> tuple[str, int]:
    """Where other nodes' pods are, and the pods' MTU (0: the kernel's): the node's
    interface for host-gw, the VXLAN device (made here, over it) for vxlan."""
    interface = _node_interface(config)
    if config.pod_network != "vxlan":
        return interface, 0
    from agent.network.vxlan import ensure_device
    return config.vxlan_device, ensure_device(name=config.vxlan_device, node_ip=config.node_ip, underlay=interface)


def _route_table(config: AgentConfig, uplink: str | None):
    if uplink is None:
        return None
    if config.pod_network == "vxlan":
        from agent.network.vxlan import VxlanRouteTable
        return VxlanRouteTable(device=uplink)
    from agent.network.routes import NetlinkRouteTable
    return NetlinkRouteTable(interface=uplink)


if __name__ == "__main__":
    sys.exit(main())
