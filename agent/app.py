"""The running agent: puts node, network, pod workers, service and metrics together.

Order matters and is the point of this module:
1. register the Node and start the heartbeat (the scheduler can see us);
2. with networking: wait for spec.podCIDR, then set up the node's bridge;
   with a pod network across nodes, program the routes to the other nodes'
   podCIDRs from the Node objects (agent.noderoutes);
3. start the pod informer and wait for its first list, then `recover()`
   (adopt what the runtime still runs, remove the rest) BEFORE any event can
   start a container — else a restart would start duplicates;
4. start the pod workers, the Agent service and /metrics.
`stop()` undoes 4..1 without stopping any container: they outlive the agent.

`agent.main` builds the real parts (LinuxRuntime with the pre-forked zygote,
ImageStore and a StoreRegistry pulling into it, PodNetworkManager); tests
pass FakeRuntime and FakeImages (and a registry of their own, or none).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from agent.cadvisor import collect as collect_cadvisor
from agent.config import AgentConfig, split_host_port
from agent.events import EventRecorder
from agent.imagepuller import Registry
from agent.images.store import ImageStore
from agent.peerimages import REGISTRY_ANNOTATION, ImagesReport
from agent.memory import release_free_memory
from agent.metrics import AgentMetrics
from agent.containerlogs import ContainerLogManager
from agent.dns.node import DnsSettings, NodeDns
from agent.network.routes import RouteTable
from agent import pressure
from agent.eviction import EvictionManager
from agent.node import POD_EGRESS_ANNOTATION, NodeAgent, NodeIdentity
from agent.noderoutes import NodeRoutesController
from agent.podworkers import ImageResolver, PodWorkers
from agent.runtime.interface import Runtime
from agent.server import AgentService, start_server
from agent.stopping import stop_tasks_and_workers
from skiff.client import ApiClient
from skiff.controller import Informer, SharedInformerFactory
from skiff.controller.informer import READY_BOUND_SECONDS

log = logging.getLogger(__name__)

STATS_PERIOD_SECONDS = 15.0
NetworkFactory = Callable[[str], Any]  # pod CIDR -> a PodNetworkManager


def _credentials(config: AgentConfig):
    """Secure mode's CA and node certificate (skiff.pki.Credentials), or None."""
    if not config.client_ca_file:
        return None
    from skiff.pki import Credentials
    return Credentials.load(ca=config.client_ca_file, cert=config.tls_cert_file, key=config.tls_private_key_file)


class Agent:
    def __init__(self, *, config: AgentConfig, runtime: Runtime, images: ImageResolver,
                 network_factory: NetworkFactory | None = None, registry: Registry | None = None,
                 routes: RouteTable | None = None) -> None:
        self.config = config
        self.runtime = runtime
        self.images = images
        self.registry = registry  # pulls images into `images`; None: only local images run
        self.network_factory = network_factory
        self.routes = routes  # routes to other nodes' pods (--pod-network host-gw); None: this node alone
        self.credentials = _credentials(config)   # secure mode (decision 32): the node's certificate
        self.client = ApiClient(config.server, credentials=self.credentials)
        self.metrics = AgentMetrics(node_name=config.node_name, cgroup_parent=config.cgroup_parent)
        self.network: Any = None
        self.informers = SharedInformerFactory(self.client, metrics=self.metrics.controller)
        self.informer: Informer | None = None
        self.watch_bound_seconds = READY_BOUND_SECONDS   # the pod informer failing longer: Ready=False
        self.workers: PodWorkers | None = None
        self.server = None
        self.port = 0
        self.metrics_server = None
        self.image_server = None   # the node's registry for its peers (decision 33)
        self.dns: NodeDns | None = None
        self._tasks: list[asyncio.Task] = []
        self._image_tls = None   # the peers' registry's TLS context (reloaded on certificate rotation)
        self.rotator = None

    async def start(self) -> None:
        cfg = self.config
        host, port = split_host_port(cfg.listen, flag="--listen")
        # The service port goes into the Node, so bind it first (port 0 in tests: a free one).
        service_holder: dict[str, AgentService] = {}
        images_service = None
        if isinstance(self.images, ImageStore):   # `skiff image load|push` through the API (decision 33)
            from agent.imageservice import ImagesService
            images_service = ImagesService(store=self.images, node_name=cfg.node_name)
        rotating = None
        if cfg.rotate_certificates:   # the serving side takes the renewed pair at its next handshake
            from agent.certrotation import serving_credentials
            rotating = serving_credentials(ca_file=cfg.client_ca_file, cert_file=cfg.tls_cert_file,
                                           key_file=cfg.tls_private_key_file)
        self.server, self.port = await start_server(service=_LateService(service_holder), host=host, port=port,
                                                    tls=self.credentials, images=images_service,
                                                    tls_credentials=rotating)
        if cfg.metrics_listen:  # bound early too: a taken port fails the start, not an hour later
            mhost, mport = split_host_port(cfg.metrics_listen, flag="--metrics-listen")
            self.metrics_server = self.metrics.serve(host=mhost, port=mport)
        registry_address = await self._serve_images()
        identity = NodeIdentity(cfg.node_name, cfg.node_ip, self.port, self._metrics_address(),
                                annotations=(((POD_EGRESS_ANNOTATION, cfg.pod_egress),) if self.network_factory else ())
                                + (((REGISTRY_ANNOTATION, registry_address),) if registry_address else ()),
                                max_pods=cfg.max_pods)
        thresholds = pressure.parse_thresholds(cfg.eviction_hard)
        node = NodeAgent(client=self.client, identity=identity,
                         period_seconds=cfg.heartbeat_seconds, runtime_health=self.runtime.check_health,
                         pressure=lambda: pressure.conditions(pressure.observe(cfg.data_dir), thresholds),
                         watch_health=lambda: self.informer.problem(self.watch_bound_seconds) if self.informer else None,
                         images=ImagesReport(self.images) if isinstance(self.images, ImageStore) else None)
        await node.register()
        self._tasks.append(asyncio.create_task(node.heartbeat(), name="heartbeat"))
        if cfg.rotate_certificates:
            self._start_certificate_rotation()
        if self.network_factory is not None:
            cidr = await node.wait_for_pod_cidr()
            log.info("node %s: pod CIDR %s", cfg.node_name, cidr)
            self.network = self.network_factory(cidr)
            await asyncio.to_thread(self.network.ensure_node_network)
        if self.routes is not None:
            routes = NodeRoutesController(nodes=self.informers.informer("Node"), table=self.routes,
                                          node_name=cfg.node_name, cluster_cidr=cfg.cluster_cidr,
                                          metrics=self.metrics.controller)
            self._tasks.append(asyncio.create_task(routes.run(), name="noderoutes"))
        self.informer = self.informers.informer("Pod", field_selector=f"spec.nodeName={cfg.node_name}")
        if hasattr(self.registry, "attach_nodes"):   # peer nodes' images (decision 33)
            self.registry.attach_nodes(self.informers.informer("Node").list)
        # Cluster DNS and the Services' variables (agent/dns, decision 26): on the bridge's gateway.
        self.dns = NodeDns(informers=self.informers, settings=DnsSettings(
            enabled=cfg.cluster_dns, domain=cfg.cluster_domain, upstreams=dns_upstreams(cfg)))
        self._start_service_proxy()
        self._start_network_policies()
        self.informers.start()
        await self.informer.wait_synced()
        await self.dns.start(self.network.gateway if self.network is not None else "")
        self.workers = PodWorkers(node_name=cfg.node_name, node_ip=cfg.node_ip, pods=self.informer,
                                  client=self.client, runtime=self.runtime, images=self.images,
                                  pods_dir=cfg.pods_dir, pids_limit=cfg.pids_limit, network=self.network,
                                  metrics=self.metrics,
                                  events=EventRecorder(client=self.client, node_name=cfg.node_name),
                                  registry=self.registry, default_pull_policy=cfg.default_pull_policy,
                                  informers=self.informers, resolv_conf=self.dns.resolv_conf,
                                  service_env=self.dns.service_env)
        await self.workers.recover()
        self.informer.add_handler(self.workers.on_pod_event)
        self.workers.start()
        evictions = EvictionManager(workers=self.workers, runtime=self.runtime, thresholds=thresholds,
                                    observe=lambda: pressure.observe(cfg.data_dir),
                                    period_seconds=cfg.heartbeat_seconds)
        self._tasks.append(asyncio.create_task(evictions.run(), name="eviction"))
        container_logs = ContainerLogManager(pods_dir=cfg.pods_dir, max_size=cfg.container_log_max_size,
                                             max_files=cfg.container_log_max_files,
                                             check_seconds=cfg.container_log_check_seconds)
        self._tasks.append(asyncio.create_task(container_logs.run(), name="container-logs"))
        service_holder["service"] = AgentService(workers=self.workers, runtime=self.runtime,
                                                 node_name=cfg.node_name, logs=container_logs)
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
        self._tasks.append(asyncio.create_task(self._stats(), name="stats"))
        log.info("agent for node %s ready: service on %s:%d", cfg.node_name, host, self.port)

    def _start_network_policies(self) -> None:
        """NetworkPolicy enforced in this node's own table (agent/network/policy.py, decision 30)."""
        if self.network is None:
            return
        from agent.network.policy import policy_controller
        cfg = self.config
        policies = policy_controller(informers=self.informers, node_name=cfg.node_name, table=cfg.nft_table,
                                     bridge=cfg.bridge, metrics=self.metrics.controller)
        self._tasks.append(asyncio.create_task(policies.run(), name="networkpolicy"))

    def _start_service_proxy(self) -> None:
        """ClusterIP/NodePort/LoadBalancer DNAT in Skiff's own nftables table (decision 25)."""
        if self.network is None:
            return
        from agent.network.serviceproxy import NodeView
        from agent.network.serviceproxy.controller import service_proxy_controller
        cfg = self.config
        node = NodeView(name=cfg.node_name, node_ips=(cfg.node_ip,),
                        cluster_cidr=cfg.cluster_cidr or self.network.pod_cidr, pod_gateway=self.network.gateway,
                        pod_interface=self.network.bridge, service_cidr=cfg.service_cidr)
        proxy = service_proxy_controller(informers=self.informers, table=f"{cfg.nft_table}-svc", node=node,
                                         metrics=self.metrics.controller)
        if proxy is not None:
            self._tasks.append(asyncio.create_task(proxy.run(), name="serviceproxy"))

    def _start_certificate_rotation(self) -> None:
        """kubelet's certificate manager (decision 36): renew before expiry, then use the new pair."""
        from agent.certrotation import CertificateRotator
        cfg = self.config

        async def rotated(credentials) -> None:
            self.credentials = credentials
            await self.client.use_credentials(credentials)   # new calls on a new channel; open watches stay
            if self._image_tls is not None:   # the peers' registry: new handshakes get the new pair
                self._image_tls.load_cert_chain(cfg.tls_cert_file, cfg.tls_private_key_file)

        self.rotator = CertificateRotator(client=self.client, node_name=cfg.node_name, node_ip=cfg.node_ip,
                                          ca_file=cfg.client_ca_file, cert_file=cfg.tls_cert_file,
                                          key_file=cfg.tls_private_key_file, on_rotated=rotated)
        self._tasks.append(asyncio.create_task(self.rotator.run(), name="certificate-rotation"))

    async def _serve_images(self) -> str:
        """This node's images to its peers (agent/images/distribution.py); their HOST:PORT, "" none."""
        cfg = self.config
        if cfg.registry_port < 0 or not isinstance(self.images, ImageStore):
            return ""
        from agent.images import distribution
        tls = distribution.ssl_context(ca_file=cfg.client_ca_file, cert_file=cfg.tls_cert_file,
                                       key_file=cfg.tls_private_key_file) if cfg.client_ca_file else None
        self._image_tls = tls
        try:
            self.image_server, port = await distribution.serve(store=self.images, host=cfg.node_ip,
                                                               port=cfg.registry_port, tls=tls)
        except OSError as exc:   # the pods still run; peers just cannot fetch from this node
            log.warning("node %s serves no images to its peers: %s", cfg.node_name, exc)
            return ""
        return f"[{cfg.node_ip}]:{port}" if ":" in cfg.node_ip else f"{cfg.node_ip}:{port}"

    def _metrics_address(self) -> str:
        if self.metrics_server is None:
            return ""
        host, _port = split_host_port(self.config.metrics_listen, flag="--metrics-listen")
        return f"[{host}]:{self.metrics_server.port}" if ":" in host else f"{host}:{self.metrics_server.port}"

    async def _resync(self) -> None:
        """Level-triggered safety net: look at every pod now and then."""
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            for uid in {p.metadata.uid for p in self.informer.list()} | set(self.workers.records):
                self.workers.enqueue(uid)

    async def _stats(self) -> None:
        while True:
            try:
                # cAdvisor's series for /metrics/cadvisor: the scrape renders this snapshot.
                self.metrics.cadvisor.collector.update(
                    await collect_cadvisor(records=self.workers.records.values(), runtime=self.runtime),
                    filesystems=(str(self.config.data_dir),))
            except Exception:
                log.exception("collecting container stats failed")
            release_free_memory()  # what pod starts and this pass freed (agent.memory)
            await asyncio.sleep(STATS_PERIOD_SECONDS)

    async def stop(self) -> None:
        """Stop the agent; containers keep running."""
        await stop_tasks_and_workers(self._tasks, self.workers)
        if self.dns is not None:
            await self.dns.stop()
        await self.informers.stop()
        if self.server is not None:
            await self.server.stop(grace=1)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self.image_server is not None:
            await self.image_server.cleanup()
        await self.client.close()


def dns_upstreams(cfg: AgentConfig, *, resolv_conf: str = "/etc/resolv.conf") -> tuple[str, ...]:
    """Where the cluster DNS forwards other names: --dns-upstream as given; else, with pod
    egress nat, the node's own resolvers (its /etc/resolv.conf, IPv4 ones); with none, nowhere
    (decision 30)."""
    if cfg.dns_upstreams or cfg.pod_egress != "nat":
        return cfg.dns_upstreams
    import ipaddress

    from agent.dns.resolvconf import HostResolv
    try:
        nameservers = HostResolv.read(resolv_conf).nameservers
    except OSError:
        return ()
    out = []
    for nameserver in nameservers:
        try:
            if ipaddress.ip_address(nameserver).version == 4:
                out.append(nameserver)
        except ValueError:
            continue
    return tuple(out)


class _LateService(AgentService):
    """The service bound before the pod workers exist: answers UNAVAILABLE until they do."""

    def __init__(self, holder: dict[str, AgentService]) -> None:
        self._holder = holder

    async def Logs(self, request, context):
        target = self._holder.get("service")
        if target is None:
            await _unavailable(context)
            return
        async for chunk in target.Logs(request, context):
            yield chunk

    async def Exec(self, request_iterator, context):
        target = self._holder.get("service")
        if target is None:
            await _unavailable(context)
            return
        async for out in target.Exec(request_iterator, context):
            yield out

    async def Attach(self, request_iterator, context):
        target = self._holder.get("service")
        if target is None:
            await _unavailable(context)
            return
        async for out in target.Attach(request_iterator, context):
            yield out

    async def PortForward(self, request_iterator, context):
        target = self._holder.get("service")
        if target is None:
            await _unavailable(context)
            return
        async for out in target.PortForward(request_iterator, context):
            yield out

    async def Stats(self, request, context):
        target = self._holder.get("service")
        if target is None:
            await _unavailable(context)
            return None
        return await target.Stats(request, context)


async def _unavailable(context) -> None:
    import grpc
    await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is still starting")
