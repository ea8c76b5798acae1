"""The all-in-one cluster's parts, shared by `skiff up`, `skiff down`,
`skiff status` and the supervisor: its configuration (recorded in
DATA/run/cluster.json so later commands and the supervisor need no flags),
the components and how each is started and probed.

A component is started only by `start_component`, which holds an flock on
DATA/run while it checks the pid file and starts the process: `skiff up` and
the supervisor may both want to start a missing component, and exactly one
of them does, so a second etcd or agent never starts beside a live one.
"""
from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skiff.cli._lab import Lab, LabNode
from skiff.cli._processes import read_pid_file, write_pid_file
from skiff.client import ApiClient, ApiError, NotFound

if TYPE_CHECKING:
    from skiff.pki import ClusterPki, Credentials

ROOT = Path(__file__).resolve().parents[2]  # the source tree, for PYTHONPATH of the components


@dataclass(frozen=True)
class ClusterConfig:
    data_dir: Path
    run_dir: Path
    node_name: str
    etcd_binary: str = "/usr/bin/etcd"
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    api_port: int = 6443
    controlplane_metrics_port: int = 10257
    agent_port: int = 10250
    agent_metrics_port: int = 10255
    with_agent: bool = True
    # The node's machine-wide names: a second cluster on the same machine (a
    # test beside a real one) gives its own, so the two never share a bridge,
    # an nftables table, a cgroup parent or pod addresses.
    bridge: str = "skiff0"
    nft_table: str = "skiff"
    cgroup_parent: str = "skiff"
    cluster_cidr: str = "10.244.0.0/16"
    # `up --node-cidr-mask-size`: the prefix of each node's pod CIDR cut from cluster_cidr (the control
    # plane's flag, kube-controller-manager's; /24 = 253 pod addresses, Kubernetes' default for 110 pods).
    node_cidr_mask_size: int = 24
    # Services' cluster IPs and node ports (the control plane's flags of the same names; decision 24).
    service_cluster_ip_range: str = "10.96.0.0/16"
    service_node_port_range: str = "30000-32767"
    bootstrap_busybox: bool = True
    start_timeout: float = 60.0
    stop_timeout: float = 15.0
    # `up --monitoring`: Debian's prometheus on loopback with deploy/monitoring (skiff/cli/_monitoring.py).
    monitoring: bool = False
    prometheus_port: int = 9090
    prometheus_binary: str = "/usr/bin/prometheus"
    # `up --monitoring-rule-for-scale`: every alert's `for:` multiplied by it in DATA/monitoring/rules
    # (1: the shipped durations; a test makes an alert fire in seconds with e.g. 0.02).
    monitoring_rule_for_scale: float = 1.0
    # `up --nodes N` (skiff/cli/_lab.py): the nodes, by index, each in a network
    # namespace of its own on a private link; () is the one node on the host.
    # `name` prefixes every kernel object of theirs; `node_cidr` is the link's subnet.
    nodes: tuple[int, ...] = ()
    name: str = "skiff"
    node_cidr: str = "10.213.0.0/24"
    pod_network: str = "host-gw"
    # `up --pod-egress`: pods reach addresses outside the cluster masqueraded to their
    # node's address ("nat", as Kubernetes and Docker) or not at all ("none"; decision 30).
    pod_egress: str = "nat"
    # `up --separate-image-stores`: each node of --nodes gets a store of its own (DATA/nodes/NODE/images)
    # instead of sharing DATA/images (decision 22), as separate machines have; images reach the
    # others through the nodes' registries (decision 33).
    separate_image_stores: bool = False
    # `up --eviction-hard`: passed to every agent (kubelet's --eviction-hard); "" keeps the agent's default.
    eviction_hard: str = ""
    # `up --max-pods`: every node's pod capacity, the hollow ones' too (kubelet's --max-pods, 110).
    max_pods: int = 110
    # `up --hollow-nodes N`: N more nodes with no containers (agent/hollow.py), in one process.
    hollow_nodes: int = 0
    # Secure (decisions 32, 34; the default, `up --insecure` the opt-out): a cluster CA in DATA/pki, TLS on
    # the API (gRPC and REST), etcd and the agents' service, client certificates required, every request
    # authorized.
    secure: bool = True

    @property
    def lab(self) -> Lab | None:
        return Lab(name=self.name, node_cidr=self.node_cidr) if self.nodes else None

    @property
    def api_host(self) -> str:
        """Where the API listens: loopback, or with node namespaces the host's end of
        their link (the nodes reach it there, as remote nodes would; so does the CLI)."""
        lab = self.lab
        return lab.host_ip if lab is not None else "127.0.0.1"

    @property
    def api_address(self) -> str:
        return f"{self.api_host}:{self.api_port}"

    def node_names(self) -> list[str]:
        lab = self.lab
        return [lab.node(i).name for i in self.nodes] if lab is not None else [self.node_name]

    def hollow_node_names(self) -> list[str]:
        return [f"{HOLLOW_PREFIX}-{i}" for i in range(self.hollow_nodes)]

    @property
    def pki(self) -> "ClusterPki":
        from skiff.pki import ClusterPki
        return ClusterPki(self.data_dir / "pki")

    def client_credentials(self) -> "Credentials | None":
        """What this machine's `skiff` uses on a secure cluster: the CA and the admin certificate."""
        return self.pki.credentials("admin") if self.secure else None

    @property
    def pid_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def save_config(config: ClusterConfig) -> None:
    """Record the configuration `up` ran with, for `down`, `status` and the supervisor."""
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
    tmp = config.pid_dir / "cluster.json.tmp"
    tmp.write_text(json.dumps(fields) + "\n")
    os.replace(tmp, config.pid_dir / "cluster.json")


def load_config(config: ClusterConfig) -> ClusterConfig:
    """`config` with what DATA/run/cluster.json recorded (its data dir stays);
    `config` itself if there is no record (no `up` ran, or an older one)."""
    try:
        recorded = json.loads((config.pid_dir / "cluster.json").read_text())
    except (OSError, ValueError):
        return config
    known = {f.name: f for f in dataclasses.fields(ClusterConfig)}
    changes = {}
    for key, value in recorded.items():
        if key in known and key not in ("data_dir", "stop_timeout"):
            changes[key] = Path(value) if key == "run_dir" else tuple(value) if key == "nodes" else value
    try:
        return dataclasses.replace(config, **changes)
    except TypeError:
        return config


@dataclass(frozen=True)
class Component:
    name: str          # etcd, controlplane, agent
    argv: tuple[str, ...]
    marker: str        # must appear in /proc/PID/cmdline before down signals it
    address: str       # where it serves, for `skiff status`
    node: str = ""     # an agent's node name
    netns: str = ""    # a namespaced node's network namespace (its path), where argv runs

    @property
    def is_agent(self) -> bool:
        return bool(self.node)

    @property
    def command(self) -> tuple[str, ...]:
        """argv, in the component's network namespace if it has one: nsenter --net
        enters that alone, so the agent keeps the host's mounts (`ip netns exec`
        would give it a mount namespace of its own, and its pods' mounts with it)."""
        return ("nsenter", f"--net={self.netns}", "--", *self.argv) if self.netns else self.argv


def controlplane_tls_flags(pki: "ClusterPki", *, etcd_tls: bool = True) -> tuple[str, ...]:
    """`python -m controlplane.main`'s secure-mode flags for the files of `pki` (made by
    `ensure_cluster`); `etcd_tls=False` for an etcd that serves plain HTTP (a test's shared one)."""
    return ("--client-ca-file", str(pki.ca_file), "--tls-cert-file", str(pki.cert_file("apiserver")),
            "--tls-private-key-file", str(pki.key_file("apiserver")), "--token-auth-file", str(pki.token_file),
            "--kubelet-client-certificate", str(pki.cert_file("controlplane")),
            "--kubelet-client-key", str(pki.key_file("controlplane")),
            *(("--etcd-cafile", str(pki.etcd_ca_file), "--etcd-certfile", str(pki.cert_file(pki.ETCD_CLIENT)),
               "--etcd-keyfile", str(pki.key_file(pki.ETCD_CLIENT))) if etcd_tls else ()),
            "--encryption-key-file", str(pki.encryption_key_file))


def _controlplane_tls(config: ClusterConfig) -> tuple[str, ...]:
    return controlplane_tls_flags(config.pki) if config.secure else ()


def etcd_tls_flags(pki: "ClusterPki") -> tuple[str, ...]:
    """Secure: etcd serves TLS and answers only clients with a certificate of etcd's own CA (the
    control plane's apiserver-etcd-client, Prometheus'; not the cluster CA's users and nodes);
    the peer URL stays on loopback, one member."""
    return ("--client-cert-auth", "--trusted-ca-file", str(pki.etcd_ca_file),
            "--cert-file", str(pki.cert_file(pki.ETCD_SERVER)), "--key-file", str(pki.key_file(pki.ETCD_SERVER)))


def _etcd_tls(config: ClusterConfig) -> tuple[str, ...]:
    return etcd_tls_flags(config.pki) if config.secure else ()


def _agent_tls(config: ClusterConfig, node: str) -> tuple[str, ...]:
    if not config.secure:
        return ()
    pki = config.pki
    return ("--client-ca-file", str(pki.ca_file), "--tls-cert-file", str(pki.cert_file(f"node-{node}")),
            "--tls-private-key-file", str(pki.key_file(f"node-{node}")))


def components(config: ClusterConfig) -> list[Component]:
    etcd = f"127.0.0.1:{config.etcd_port}"
    peer = f"http://127.0.0.1:{config.etcd_peer_port}"
    scheme = "https" if config.secure else "http"
    out = [
        Component("etcd", (
            config.etcd_binary, "--name", "skiff", "--data-dir", str(config.data_dir / "etcd"),
            "--listen-client-urls", f"{scheme}://{etcd}", "--advertise-client-urls", f"{scheme}://{etcd}",
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"skiff={peer}", *_etcd_tls(config)), marker=str(config.data_dir / "etcd"),
            address=etcd),
        Component("controlplane", (
            sys.executable, "-m", "controlplane.main", "--etcd", etcd, "--listen", config.api_address,
            "--metrics-listen", f"127.0.0.1:{config.controlplane_metrics_port}",
            "--cluster-cidr", config.cluster_cidr, "--node-cidr-mask-size", str(config.node_cidr_mask_size),
            "--service-cluster-ip-range", config.service_cluster_ip_range,
            "--service-node-port-range", config.service_node_port_range, *_controlplane_tls(config),
            # Pods reach the REST API (the `kubernetes` Service) on the lab link's host end (decision 35).
            *(("--advertise-address", config.api_host) if config.lab is not None else ())),
            marker="controlplane.main", address=config.api_address),
    ]
    if config.with_agent and config.lab is None:
        out.append(Component("agent", (
            sys.executable, "-m", "agent.main", "--server", config.api_address, "--node-name", config.node_name,
            "--listen", f"127.0.0.1:{config.agent_port}",
            "--metrics-listen", f"127.0.0.1:{config.agent_metrics_port}",
            "--data-dir", str(config.data_dir), "--run-dir", str(config.run_dir),
            "--bridge", config.bridge, "--nft-table", config.nft_table,
            "--cgroup-parent", config.cgroup_parent, "--pod-egress", config.pod_egress,
            *_eviction_args(config), *_max_pods_args(config), *_agent_tls(config, config.node_name)), marker="agent.main",
            address=f"127.0.0.1:{config.agent_port}", node=config.node_name))
    elif config.with_agent:
        out += [node_agent(config, config.lab.node(i)) for i in config.nodes]
    if config.hollow_nodes:
        out.append(hollow_component(config))
    if config.monitoring:
        from skiff.cli._monitoring import prometheus_component   # it builds on this module
        out.append(prometheus_component(config))
    return out


HOLLOW_PREFIX = "hollow-node"


def hollow_component(config: ClusterConfig) -> Component:
    """`up --hollow-nodes N`: nodes hollow-node-0 .. N-1 in one process (agent/hollow.py); no
    ports, no kernel objects, scratch files under the run dir (removed when it stops)."""
    return Component("hollow-nodes", (
        sys.executable, "-m", "agent.hollow", "--server", config.api_address, "--nodes", str(config.hollow_nodes),
        *_max_pods_args(config),
        "--prefix", HOLLOW_PREFIX, "--scratch-dir", str(config.run_dir / "hollow"),
        *(("--cert-dir", str(config.pki.directory)) if config.secure else ())),
        marker="agent.hollow", address=f"{HOLLOW_PREFIX}-0 .. {HOLLOW_PREFIX}-{config.hollow_nodes - 1}")


async def _hollow_ready(config: ClusterConfig) -> int | None:
    """How many of the hollow nodes are Ready; None if the API cannot say."""
    wanted = set(config.hollow_node_names())
    async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
        try:
            nodes, _ = await client.list("Node", "", timeout=10)
        except ApiError:
            return None
    return sum(1 for n in nodes if n.metadata.name in wanted
               and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions))


def _eviction_args(config: ClusterConfig) -> tuple[str, ...]:
    return ("--eviction-hard", config.eviction_hard) if config.eviction_hard else ()


def _max_pods_args(config: ClusterConfig) -> tuple[str, ...]:
    return ("--max-pods", str(config.max_pods)) if config.max_pods != ClusterConfig.max_pods else ()


def node_data_dir(config: ClusterConfig, node: LabNode) -> Path:
    return config.data_dir / "nodes" / node.name


def node_images_dir(config: ClusterConfig, node: LabNode) -> Path:
    """The node's image store: DATA/images, shared by the nodes of this machine (decision 22),
    or with --separate-image-stores DATA/nodes/NODE/images, its own."""
    return node_data_dir(config, node) / "images" if config.separate_image_stores else config.data_dir / "images"


def node_run_dir(config: ClusterConfig, node: LabNode) -> Path:
    return config.run_dir / "nodes" / node.name


def node_agent(config: ClusterConfig, node: LabNode) -> Component:
    """The agent of a namespaced node: in its network namespace (the host's
    mounts and cgroups), listening on its node IP (the ports are the
    namespace's own, so every node uses the same ones), with a data dir, run
    dir, bridge, table and cgroup parent of its own."""
    argv = (sys.executable, "-m", "agent.main", "--server", config.api_address, "--node-name", node.name,
            "--node-ip", node.ip, "--listen", f"{node.ip}:{config.agent_port}",
            "--metrics-listen", f"{node.ip}:{config.agent_metrics_port}",
            "--data-dir", str(node_data_dir(config, node)), "--run-dir", str(node_run_dir(config, node)),
            # One image store for the nodes of this machine: the one `skiff build` writes (decision 22).
            "--image-dir", str(node_images_dir(config, node)),
            "--bridge", node.bridge, "--nft-table", node.nft_table, "--cgroup-parent", node.cgroup_parent,
            "--pod-network", config.pod_network, "--cluster-cidr", config.cluster_cidr,
            "--vxlan-device", node.vxlan_device, "--pod-egress", config.pod_egress, *_eviction_args(config), *_max_pods_args(config),
            *_agent_tls(config, node.name))
    return Component(f"agent-{node.name}", argv, marker=f" --node-name {node.name} ",
                     address=f"{node.ip}:{config.agent_port}", node=node.name, netns=str(node.netns_path))


def running_pid(config: ClusterConfig, component: Component) -> int | None:
    """The PID of the component if the process its pid file names still runs."""
    return read_pid_file(config.pid_dir / f"{component.name}.pid", marker=component.marker)


def component_env() -> dict[str, str]:
    """The environment of child processes: this source tree importable."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))


class AlreadyRunning(Exception):
    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.pid = pid


def start_component(config: ClusterConfig, component: Component) -> subprocess.Popen:
    """Start the component in its own session (a Ctrl-C in a terminal or the
    end of its starter does not reach it), output appended to its log, and
    record its pid file. Raises AlreadyRunning if its pid file names a live
    process, OSError if it cannot be run."""
    fd = os.open(config.pid_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released with the close, after the pid file is written
        if (pid := running_pid(config, component)) is not None:
            raise AlreadyRunning(pid)
        with open(config.log_dir / f"{component.name}.log", "ab") as log:
            proc = subprocess.Popen(component.command, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=config.data_dir, env=component_env(),
                                    start_new_session=True)
        write_pid_file(config.pid_dir / f"{component.name}.pid", proc.pid)
        return proc
    finally:
        os.close(fd)


# ---------------------------------------------------------------- health

def _etcd_healthy(config: ClusterConfig) -> bool:
    try:
        # No proxy: an http_proxy in the environment must not intercept loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if config.secure:   # etcd answers only a client certificate of its own CA: the control plane's
            import ssl
            pki = config.pki
            context = ssl.create_default_context(cafile=str(pki.etcd_ca_file))
            context.load_cert_chain(pki.cert_file(pki.ETCD_CLIENT), pki.key_file(pki.ETCD_CLIENT))
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=context))
        scheme = "https" if config.secure else "http"
        with opener.open(f"{scheme}://127.0.0.1:{config.etcd_port}/health", timeout=1) as r:
            return b'"true"' in r.read()
    except OSError:
        return False


async def _api_answers(config: ClusterConfig) -> bool:
    async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
        try:
            await client.list("Node", "", timeout=2)
            return True
        except ApiError:
            return False


def _controlplane_ready(config: ClusterConfig) -> str | None:
    """None when the control plane's /readyz (metrics port) says ok or cannot be
    read; else its first failed check (its informers failing past a bound, issue 15)."""
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{config.controlplane_metrics_port}/readyz", timeout=2):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return None
        lines = exc.read().decode(errors="replace").splitlines()
        return (lines[0].removeprefix("[-]") if lines else "readyz check failed")[:200]
    except OSError:
        return None


async def _node_ready(config: ClusterConfig, node_name: str) -> bool | None:
    """The node's Ready condition; None if the API cannot say."""
    async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
        try:
            node = await client.get("Node", node_name, "", timeout=2)
        except NotFound:
            return False
        except ApiError:
            return None
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def healthy(config: ClusterConfig, component: Component) -> bool:
    """What `up` waits for: etcd answers /health, the API a List, the node is Ready."""
    return health(config, component) in ("healthy", "Ready")


def health(config: ClusterConfig, component: Component) -> str:
    """A word for `skiff status`: healthy/unhealthy; for the agent its node's
    Ready condition (Ready, NotReady, or unknown while the API is down)."""
    if component.name == "etcd":
        return "healthy" if _etcd_healthy(config) else "unhealthy"
    if component.name == "controlplane":
        if not asyncio.run(_api_answers(config)):
            return "unhealthy"
        problem = _controlplane_ready(config)
        return "healthy" if problem is None else f"not ready ({problem})"
    if component.name == "prometheus":
        from skiff.cli._monitoring import prometheus_ready
        return "healthy" if prometheus_ready(config) else "unhealthy"
    if component.name == "hollow-nodes":
        count = asyncio.run(_hollow_ready(config))
        return "unknown" if count is None else "Ready" if count == config.hollow_nodes else \
            f"{count}/{config.hollow_nodes} Ready"
    ready = asyncio.run(_node_ready(config, component.node or config.node_name))
    return "unknown" if ready is None else "Ready" if ready else "NotReady"
