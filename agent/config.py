"""The node agent's configuration: a frozen dataclass, its validator and the
command line that fills it.

Imports nothing heavy on purpose: `agent.main` parses the command line and
spawns the runtime's zygote before grpc is imported or any thread started
(fork from a threaded process is unsafe), so this module must stay free of grpc.
"""
from __future__ import annotations

import argparse
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

RUNTIMES = ("linux", "fake")
POD_NETWORKS = ("none", "host-gw", "vxlan")
POD_EGRESS = ("nat", "none")
# Kept equal to agent.imagepuller.DEFAULT_POLICY_MODES (not imported: this module stays light).
DEFAULT_PULL_POLICIES = ("IfNotPresent", "kubernetes")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the flag."""


@dataclass(frozen=True)
class AgentConfig:
    server: str = "127.0.0.1:6443"          # the control plane's API address
    # Secure mode (decision 32; kubelet's flag names): the cluster CA, and this node's certificate
    # (CN system:node:NAME) as its client to the API and as the agent's serving one. The agent's
    # service then accepts only the control plane's client certificate.
    client_ca_file: str = ""
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    # kubelet's --rotate-certificates (decision 36): renew the node certificate through a CSR at 70-90 %
    # of its lifetime and swap it in (agent/certrotation.py); the files above are rewritten.
    rotate_certificates: bool = False
    node_name: str = ""
    node_ip: str = "127.0.0.1"              # the node's InternalIP
    listen: str = "127.0.0.1:10250"         # the Agent gRPC service (logs, exec, stats)
    metrics_listen: str = "127.0.0.1:10255"
    # The node's images served to its peers (OCI Distribution API, read only; decision 33), on
    # --node-ip; 0: a free port (the Node's skiff.io/image-registry annotation says which); -1: off.
    registry_port: int = 10251
    data_dir: Path = Path("/var/lib/skiff")
    run_dir: Path = Path("/run/skiff")
    # The image store; None: DATA_DIR/images. Nodes of one machine (`skiff up --nodes N`)
    # share the one `skiff build` writes (docs/architecture.md, decision 22).
    image_dir: Path | None = None
    cgroup_parent: str = "skiff"
    pids_limit: int = 4096
    max_pods: int = 110                     # kubelet's --max-pods: the Node's capacity/allocatable pods
    log_level: str = "info"
    runtime: str = "linux"                  # "fake": in-memory runtime, for tests of the agent process
    heartbeat_seconds: float = 2.0   # with the control plane's 8 s grace: NotReady <= 10 s (decision 23)
    resync_seconds: float = 30.0
    # kubelet's --eviction-hard: node pressure conditions and eviction (agent.pressure)
    eviction_hard: str = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%"
    network: bool = True                    # pod networking (bridge, veth, IPAM, hostPort)
    bridge: str = "skiff0"                  # the node bridge (tests and one-machine multi-node: unique ones)
    nft_table: str = "skiff"                # the nftables table (inet) for hostPorts
    # The pod network across nodes: "none" (each node's pods on their own, as one node
    # needs) or "host-gw" (routes to other nodes' podCIDRs via their node IPs, over the
    # interface holding --node-ip; agent/network/routes.py) or "vxlan" (a tunnel to each
    # node over that interface; agent/network/vxlan.py). cluster_cidr bounds it.
    pod_network: str = "none"
    cluster_cidr: str = ""
    vxlan_device: str = "skiff-vxlan"
    # Cluster DNS (agent/dns, decision 26): served on the pod bridge's gateway address, port 53;
    # names outside cluster_domain are forwarded to dns_upstreams ("IP" or "IP:PORT", in order;
    # none: REFUSED at once).
    cluster_dns: bool = True
    cluster_domain: str = "cluster.local"
    dns_upstreams: tuple[str, ...] = ()
    # Pod egress (decision 30): "nat" masquerades pod traffic to addresses outside the
    # cluster (neither cluster_cidr nor service_cidr) to the node's address, as Kubernetes
    # and Docker do; "none" keeps decision 9's fence (pods reach nothing beyond the cluster).
    pod_egress: str = "nat"
    service_cidr: str = "10.96.0.0/16"
    # imagePullPolicy of a container that sets none. "IfNotPresent": an image the node has
    # is used as is (an offline node with built/bootstrapped `busybox` never reaches out);
    # "kubernetes": Always for :latest or no tag, else IfNotPresent (agent.imagepuller).
    default_pull_policy: str = "IfNotPresent"
    # Container log rotation, as the kubelet's containerLogMaxSize / containerLogMaxFiles
    # (the live file counts as one) and containerLogMonitorInterval.
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    container_log_check_seconds: float = 10.0

    @property
    def pods_dir(self) -> Path:
        """Per-pod files: logs and emptyDir volumes, as kubelet's /var/log/pods."""
        return self.data_dir / "pods"

    @property
    def images_dir(self) -> Path:
        return self.image_dir if self.image_dir is not None else self.data_dir / "images"


def split_host_port(address: str, *, flag: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def validate(config: AgentConfig) -> AgentConfig:
    """Return config unchanged, or raise ConfigError naming the flag at fault."""
    if not config.node_name:
        raise ConfigError("--node-name: must not be empty")
    if len(config.node_name) > 253 or config.node_name != config.node_name.lower():
        raise ConfigError(f"--node-name: {config.node_name!r} is not a lowercase DNS name")
    try:
        ipaddress.ip_address(config.node_ip)
    except ValueError:
        raise ConfigError(f"--node-ip: {config.node_ip!r} is not an IP address") from None
    split_host_port(config.server, flag="--server")
    split_host_port(config.listen, flag="--listen")
    if not -1 <= config.registry_port <= 65535:
        raise ConfigError(f"--registry-port: {config.registry_port} is not a port (0-65535, or -1: off)")
    tls = {"--client-ca-file": config.client_ca_file, "--tls-cert-file": config.tls_cert_file,
           "--tls-private-key-file": config.tls_private_key_file}
    if any(tls.values()) and not all(tls.values()):
        raise ConfigError(f"secure mode needs {', '.join(f for f, v in tls.items() if not v)} as well")
    if config.rotate_certificates and not all(tls.values()):
        raise ConfigError("--rotate-certificates needs --client-ca-file, --tls-cert-file and --tls-private-key-file")
    if config.metrics_listen:
        split_host_port(config.metrics_listen, flag="--metrics-listen")
    for flag, path in (("--data-dir", config.data_dir), ("--run-dir", config.run_dir),
                       ("--image-dir", config.images_dir)):
        if not path.is_absolute():
            raise ConfigError(f"{flag}: {str(path)!r} must be an absolute path")
    if "skiff" not in config.cgroup_parent or "/" in config.cgroup_parent.strip("/"):
        raise ConfigError(f"--cgroup-parent: {config.cgroup_parent!r} must be one cgroup name containing 'skiff'")
    if config.pids_limit < 1:
        raise ConfigError(f"--pids-limit: must be positive, got {config.pids_limit}")
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log-level: {config.log_level!r} is not one of debug, info, warning, error")
    if config.runtime not in RUNTIMES:
        raise ConfigError(f"--runtime: {config.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if "skiff" not in config.bridge or len(config.bridge) > 15:
        raise ConfigError(f"--bridge: {config.bridge!r} must contain 'skiff' and be at most 15 characters")
    if not config.nft_table.startswith("skiff"):
        raise ConfigError(f"--nft-table: {config.nft_table!r} must start with 'skiff'")
    if config.pod_network not in POD_NETWORKS:
        raise ConfigError(f"--pod-network: {config.pod_network!r} is not one of {', '.join(POD_NETWORKS)}")
    if config.pod_network != "none":
        if not config.network:
            raise ConfigError(f"--pod-network {config.pod_network}: needs pod networking (not --no-network)")
        try:
            ipaddress.IPv4Network(config.cluster_cidr)
        except ValueError:
            raise ConfigError(f"--cluster-cidr: {config.cluster_cidr!r} is not an IPv4 network "
                              f"(--pod-network {config.pod_network} needs one)") from None
    if config.pod_egress not in POD_EGRESS:
        raise ConfigError(f"--pod-egress: {config.pod_egress!r} is not one of {', '.join(POD_EGRESS)}")
    try:
        ipaddress.IPv4Network(config.service_cidr)
    except ValueError:
        raise ConfigError(f"--service-cidr: {config.service_cidr!r} is not an IPv4 network") from None
    if "skiff" not in config.vxlan_device or len(config.vxlan_device) > 15:
        raise ConfigError(f"--vxlan-device: {config.vxlan_device!r} must contain 'skiff' and be at most 15 characters")
    if not _DOMAIN.match(config.cluster_domain):
        raise ConfigError(f"--cluster-domain: {config.cluster_domain!r} is not a DNS domain (e.g. cluster.local)")
    for upstream in config.dns_upstreams:
        if not _upstream_ok(upstream):
            raise ConfigError(f"--dns-upstream: {upstream!r} is not an IP address or IP:PORT")
    if config.default_pull_policy not in DEFAULT_PULL_POLICIES:
        raise ConfigError(f"--default-pull-policy: {config.default_pull_policy!r} is not one of "
                          f"{', '.join(DEFAULT_PULL_POLICIES)}")
    if config.container_log_max_size < 4096:
        raise ConfigError(f"--container-log-max-size: must be at least 4Ki, got {config.container_log_max_size} bytes")
    if config.container_log_max_files < 2:
        raise ConfigError(f"--container-log-max-files: must be at least 2 (the live file and one rotated), "
                          f"got {config.container_log_max_files}")
    if config.container_log_check_seconds <= 0:
        raise ConfigError("--container-log-check-seconds: must be positive")
    if config.max_pods < 1:
        raise ConfigError(f"--max-pods: must be at least 1, got {config.max_pods}")
    if config.heartbeat_seconds <= 0 or config.resync_seconds <= 0:
        raise ConfigError("heartbeat and resync periods must be positive")
    from agent.pressure import ThresholdError, parse_thresholds
    try:
        parse_thresholds(config.eviction_hard)
    except ThresholdError as exc:
        raise ConfigError(f"--eviction-hard: {exc}") from None
    return config


_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def _upstream_ok(text: str) -> bool:
    host, port = text, "53"
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port.isdigit() and 0 < int(port) <= 65535


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff-agent", description="Skiff's node agent: runs the pods bound to this node.")
    p.add_argument("--server", default=AgentConfig.server, help="control plane API address (HOST:PORT)")
    p.add_argument("--node-name", default="", help="this node's name (default: the hostname)")
    p.add_argument("--client-ca-file", default="", metavar="PATH",
                   help="secure mode: the cluster CA (the API's and the control plane's certificates chain to it)")
    p.add_argument("--tls-cert-file", default="", metavar="PATH",
                   help="secure mode: this node's certificate, client to the API and the service's own")
    p.add_argument("--tls-private-key-file", default="", metavar="PATH")
    p.add_argument("--rotate-certificates", action="store_true",
                   help="secure mode: renew this node's certificate through the API before it expires")
    p.add_argument("--node-ip", default=AgentConfig.node_ip, help="this node's InternalIP")
    p.add_argument("--listen", default=AgentConfig.listen, help="the agent's gRPC service (logs, exec, stats)")
    p.add_argument("--metrics-listen", default=AgentConfig.metrics_listen,
                   help="Prometheus /metrics address (HOST:PORT; empty: off)")
    p.add_argument("--registry-port", type=int, default=AgentConfig.registry_port, metavar="PORT",
                   help="serve this node's images to its peers on NODE_IP:PORT (OCI distribution API, read "
                        "only; 0: a free port; -1: off)")
    p.add_argument("--data-dir", default=str(AgentConfig.data_dir))
    p.add_argument("--run-dir", default=str(AgentConfig.run_dir))
    p.add_argument("--image-dir", default="", metavar="DIR",
                   help="the image store (default: DATA_DIR/images); several agents may share one")
    p.add_argument("--cgroup-parent", default=AgentConfig.cgroup_parent)
    p.add_argument("--pids-limit", type=int, default=AgentConfig.pids_limit, help="per-pod pids limit")
    p.add_argument("--log-level", default=AgentConfig.log_level)
    p.add_argument("--check-config", action="store_true",
                   help="check the flags and exit: 0 when good, 2 naming the flag at fault (skiff up asks first)")
    p.add_argument("--runtime", default=AgentConfig.runtime, choices=RUNTIMES,
                   help="container runtime: linux (real) or fake (in memory, for tests)")
    p.add_argument("--no-network", action="store_true", help="no pod networking (pods get no IP)")
    p.add_argument("--bridge", default=AgentConfig.bridge, help="the node bridge pods attach to")
    p.add_argument("--nft-table", default=AgentConfig.nft_table, help="Skiff's nftables table (family inet)")
    p.add_argument("--pod-network", default=AgentConfig.pod_network, choices=POD_NETWORKS,
                   help="reach other nodes' pods: none, host-gw (routes via the node IPs, nodes on one link) "
                        "or vxlan (a VXLAN tunnel to each node)")
    p.add_argument("--vxlan-device", default=AgentConfig.vxlan_device, help="with --pod-network vxlan: its device")
    p.add_argument("--cluster-cidr", default=AgentConfig.cluster_cidr, metavar="CIDR",
                   help="the whole pod network (with --pod-network host-gw)")
    p.add_argument("--pod-egress", default=AgentConfig.pod_egress, choices=POD_EGRESS,
                   help="pods reaching addresses outside the cluster: nat (masqueraded to the node's address, "
                        "the default) or none (fenced in)")
    p.add_argument("--service-cidr", default=AgentConfig.service_cidr, metavar="CIDR",
                   help="the Services' virtual addresses (never NATed by --pod-egress nat)")
    p.add_argument("--no-cluster-dns", action="store_true",
                   help="serve no cluster DNS (ClusterFirst pods then get the node's resolvers)")
    p.add_argument("--cluster-domain", default=AgentConfig.cluster_domain,
                   help="the cluster's DNS domain (default cluster.local)")
    p.add_argument("--dns-upstream", action="append", default=[], metavar="IP[:PORT]",
                   help="where the cluster DNS forwards names outside the cluster domain (repeatable, in order)")
    p.add_argument("--default-pull-policy", default=AgentConfig.default_pull_policy, choices=DEFAULT_PULL_POLICIES,
                   help="imagePullPolicy of containers that set none: IfNotPresent (default: a local image is "
                        "used as is) or kubernetes (Always for :latest or no tag, else IfNotPresent)")
    p.add_argument("--heartbeat-seconds", type=float, default=AgentConfig.heartbeat_seconds,
                   help=argparse.SUPPRESS)
    p.add_argument("--max-pods", type=int, default=AgentConfig.max_pods, metavar="N",
                   help="how many pods this node runs at most: its capacity and allocatable pods, which the "
                        "scheduler honours (kubelet's --max-pods; default %(default)s)")
    p.add_argument("--eviction-hard", default=AgentConfig.eviction_hard, metavar="SIGNAL<QUANTITY,...",
                   help="kubelet's hard eviction thresholds (memory.available, nodefs.available, "
                        "nodefs.inodesFree, pid.available; a quantity or N%%)")
    p.add_argument("--container-log-max-size", default="10Mi", metavar="QUANTITY",
                   help="rotate a container's log file once it is larger (kubelet's containerLogMaxSize; 10Mi)")
    p.add_argument("--container-log-max-files", type=int, default=AgentConfig.container_log_max_files,
                   metavar="N", help="log files kept per container, the live one included (kubelet's "
                                     "containerLogMaxFiles; 5)")
    p.add_argument("--container-log-check-seconds", type=float, default=AgentConfig.container_log_check_seconds,
                   help=argparse.SUPPRESS)
    return p


def _log_max_size(text: str) -> int:
    from skiff.api.quantity import QuantityError, memory_bytes   # light: re and fractions only
    try:
        return memory_bytes(text)
    except QuantityError as exc:
        raise ConfigError(f"--container-log-max-size: {exc}") from None


def config_from_args(argv: Sequence[str] | None = None) -> AgentConfig:
    """Parse the command line into a validated AgentConfig (ConfigError if invalid)."""
    args = build_parser().parse_args(argv)
    node_name = args.node_name or socket.gethostname().lower()
    return validate(AgentConfig(
        server=args.server, node_name=node_name, node_ip=args.node_ip, listen=args.listen,
        client_ca_file=args.client_ca_file, tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file, rotate_certificates=args.rotate_certificates,
        metrics_listen=args.metrics_listen, data_dir=Path(args.data_dir), run_dir=Path(args.run_dir),
        registry_port=args.registry_port,
        image_dir=Path(args.image_dir) if args.image_dir else None,
        cgroup_parent=args.cgroup_parent, pids_limit=args.pids_limit, max_pods=args.max_pods,
        log_level=args.log_level,
        runtime=args.runtime, network=not args.no_network,
        bridge=args.bridge, nft_table=args.nft_table, heartbeat_seconds=args.heartbeat_seconds,
        eviction_hard=args.eviction_hard,
        pod_network=args.pod_network, cluster_cidr=args.cluster_cidr, vxlan_device=args.vxlan_device,
        pod_egress=args.pod_egress, service_cidr=args.service_cidr,
        default_pull_policy=args.default_pull_policy,
        cluster_dns=not args.no_cluster_dns, cluster_domain=args.cluster_domain.strip("."),
        dns_upstreams=tuple(args.dns_upstream),
        container_log_max_size=_log_max_size(args.container_log_max_size),
        container_log_max_files=args.container_log_max_files,
        container_log_check_seconds=args.container_log_check_seconds))
