"""`skiff-controlplane`: wiring only.

One asyncio process: the gRPC API server over the etcd store, the /metrics
endpoint, and the scheduler and controllers - which reach the API over
loopback like any other client (k3s's model), so they see exactly what users
and agents see, through one SharedInformerFactory: one watch per kind for the
whole process. SIGTERM or SIGINT stops everything cleanly.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from dataclasses import dataclass

from controlplane.api.registry import Admission
from controlplane.store.cacher import DEFAULT_CAPACITY as DEFAULT_WATCH_CACHE_SIZE
from controlplane.api.inflight import DEFAULT_MUTATING, DEFAULT_READONLY
from controlplane.api.server import ApiServer
from controlplane.metrics import Metrics, MetricsServer
from controlplane.rest import RestServer
from controlplane.services.hook import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, ServiceAllocations, \
    service_range_problems
from controlplane.store import Store
from controlplane.store import Unavailable as StoreUnavailable
from skiff.client import ApiClient
from skiff.api.kinds.pod import DEFAULT_TOLERATION_SECONDS
from skiff.kubeconfig import DEFAULT_REST_ADDRESS, rest_address
from skiff.retry import Backoff, retry_async

log = logging.getLogger("skiff.controlplane")


@dataclass(frozen=True)
class Config:
    etcd: str = "127.0.0.1:2379"
    etcd_prefix: str = "/skiff"
    listen: str = "127.0.0.1:6443"
    metrics_listen: str = "127.0.0.1:10257"
    rest_listen: str = DEFAULT_REST_ADDRESS   # Kubernetes' REST API (loopback HTTP until TLS lands); "" = off
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    service_cluster_ip_range: str = DEFAULT_SERVICE_CIDR   # Services' cluster IPs (decision 24)
    service_node_port_range: str = DEFAULT_NODE_PORT_RANGE
    # Skiff's small-cluster defaults (docs/architecture.md decision 23): with the
    # agent's 2 s heartbeat a silent node is NotReady within 8 s + one 2 s check,
    # and its pods leave after 5 s more. Kubernetes: 40 s and 300 s.
    node_monitor_grace_seconds: float = 8.0
    default_not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    default_unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    event_ttl_seconds: float = 3600.0
    watch_cache_size: int = DEFAULT_WATCH_CACHE_SIZE   # events kept per kind (decision 38); 0: no watch cache
    max_requests_inflight: int = DEFAULT_READONLY      # kube-apiserver's limits (controlplane/api/inflight.py)
    max_mutating_requests_inflight: int = DEFAULT_MUTATING
    run_controllers: bool = True
    leader_elect: bool = True
    leader_lease_seconds: float = 15.0
    identity: str = ""  # "" = hostname_random
    # Secure mode (decision 32; kube-apiserver's flag names): all set, or none.
    client_ca_file: str = ""          # the CA client certificates must chain to; set = secure
    tls_cert_file: str = ""           # the API's serving certificate (gRPC and REST)
    tls_private_key_file: str = ""
    token_auth_file: str = ""         # static bearer tokens (REST): token,user,uid,"groups"
    kubelet_client_certificate: str = ""   # the control plane's client certificate: agents, its own controllers
    kubelet_client_key: str = ""
    etcd_cafile: str = ""             # etcd with --client-cert-auth: its CA, and this client's certificate
    etcd_certfile: str = ""
    etcd_keyfile: str = ""
    encryption_key_file: str = ""     # Secrets encrypted at rest with its keys (controlplane/store/encryption.py)
    # ServiceAccount tokens (decision 35): "" = sa.key beside the CA (created when absent)
    service_account_signing_key_file: str = ""
    service_account_issuer: str = "https://kubernetes.default.svc.cluster.local"
    # Where pods reach the REST front door (the `kubernetes` Service's endpoint; the REST server listens
    # there too): "" = the --rest-listen address (loopback: reached from a host's pods by route_localnet)
    advertise_address: str = ""
    # Node certificates from CSRs (decision 36; kube-controller-manager's flags): "" = ca.crt/ca.key beside
    # --client-ca-file, and $SKIFF_CLUSTER_SIGNING_DURATION or 8760h
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    cluster_signing_duration: str = ""

    @property
    def secure(self) -> bool:
        return bool(self.client_ca_file)


def validate_config(config: Config) -> list[str]:
    problems = []
    for flag, value in (("--etcd", config.etcd), ("--listen", config.listen),
                        ("--metrics-listen", config.metrics_listen),
                        *((("--rest-listen", config.rest_listen),) if config.rest_listen else ())):
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            problems.append(f"{flag} {value!r}: expected HOST:PORT")
    try:
        network = ipaddress.ip_network(config.cluster_cidr)
        if not network.prefixlen < config.node_cidr_mask_size <= network.max_prefixlen:
            problems.append(f"--node-cidr-mask-size {config.node_cidr_mask_size}: must be longer than "
                            f"the cluster CIDR's /{network.prefixlen} and at most /{network.max_prefixlen}")
    except ValueError as exc:
        problems.append(f"--cluster-cidr {config.cluster_cidr!r}: {exc}")
    problems += service_range_problems(config.service_cluster_ip_range, config.service_node_port_range,
                                       cluster_cidr=config.cluster_cidr)
    if config.advertise_address:
        try:
            ipaddress.ip_address(config.advertise_address)
        except ValueError:
            problems.append(f"--advertise-address {config.advertise_address!r}: expected an IP address")
    if config.event_ttl_seconds < 0:
        problems.append(f"--event-ttl {config.event_ttl_seconds:g}: must be 0 (keep events) or more")
    if config.leader_lease_seconds < 1:
        problems.append(f"--leader-lease-seconds {config.leader_lease_seconds}: must be at least 1")
    if config.watch_cache_size < 0:
        problems.append(f"--default-watch-cache-size {config.watch_cache_size}: must be 0 (no watch cache) or more")
    for flag, value in (("--max-requests-inflight", config.max_requests_inflight),
                        ("--max-mutating-requests-inflight", config.max_mutating_requests_inflight)):
        if value < 0:
            problems.append(f"{flag} {value}: must be 0 (no limit) or more")
    if not config.etcd_prefix.startswith("/"):
        problems.append(f"--etcd-prefix {config.etcd_prefix!r}: must start with /")
    try:
        from controlplane.joining import signing_duration
        signing_duration(config.cluster_signing_duration)
    except ValueError as exc:
        problems.append(str(exc))
    tls_flags = {"--client-ca-file": config.client_ca_file, "--tls-cert-file": config.tls_cert_file,
                 "--tls-private-key-file": config.tls_private_key_file,
                 "--kubelet-client-certificate": config.kubelet_client_certificate,
                 "--kubelet-client-key": config.kubelet_client_key}
    etcd_tls = {"--etcd-cafile": config.etcd_cafile, "--etcd-certfile": config.etcd_certfile,
                "--etcd-keyfile": config.etcd_keyfile}
    if any(etcd_tls.values()) and not all(etcd_tls.values()):
        problems.append(f"etcd over TLS needs {', '.join(f for f, v in etcd_tls.items() if not v)} as well")
    if any(tls_flags.values()) or config.token_auth_file:
        missing = [flag for flag, value in tls_flags.items() if not value]
        if missing:
            problems.append(f"secure mode needs {', '.join(missing)} as well")
    return problems


async def start_services(allocations: ServiceAllocations, registry, rest_listen: str) -> None:
    """Repair the Service allocations, ensure the `kubernetes` Service, then repair every few minutes."""
    from controlplane.services import kubernetes
    backoff = Backoff(initial=0.2, maximum=5.0)
    await retry_async(allocations.repair, retry_on=(StoreUnavailable,), backoff=backoff)
    await retry_async(lambda: kubernetes.ensure(registry, cluster_ip=allocations.first_ip,
                                                rest_address=rest_listen),
                      retry_on=(StoreUnavailable,), backoff=backoff)
    await allocations.run_repairs()


async def _bootstrap(registry, *, secure: bool) -> None:
    await registry.bootstrap()
    if secure:
        from controlplane import rbac
        await rbac.bootstrap(registry.create)
        from controlplane import joining
        await joining.bootstrap(registry.create)   # kubeadm's roles for joining nodes (decision 36)


def _advertised(config: Config) -> str:
    """ADVERTISE:REST_PORT, where pods reach the REST front door ("" = the --rest-listen address)."""
    if not config.advertise_address or not config.rest_listen:
        return ""
    host, _, port = config.rest_listen.rpartition(":")
    return "" if host.strip("[]") == config.advertise_address else f"{config.advertise_address}:{port}"


def _default_rest_listen(listen: str) -> str:
    port = listen.rpartition(":")[2]
    return rest_address(int(port)) if port.isdigit() else rest_address()


def parse_args(argv: list[str] | None) -> tuple[Config, str]:
    p = argparse.ArgumentParser(prog="skiff-controlplane", description="The Skiff control plane.")
    p.add_argument("--etcd", default=Config.etcd, help="etcd client endpoint HOST:PORT")
    p.add_argument("--etcd-prefix", default=Config.etcd_prefix, help="root of Skiff's keys in etcd")
    p.add_argument("--listen", default=Config.listen, help="gRPC API address HOST:PORT")
    p.add_argument("--metrics-listen", default=Config.metrics_listen, help="/metrics address HOST:PORT")
    p.add_argument("--rest-listen", default=None,
                   help="Kubernetes REST API address HOST:PORT for kubectl and client libraries "
                        "(plain HTTP: keep it on loopback); empty to turn it off (default: $SKIFF_REST_LISTEN, else "
                        "127.0.0.1 at the --listen port + 1: 6444)")
    p.add_argument("--cluster-cidr", default=Config.cluster_cidr, help="pod network; node pod CIDRs come from it")
    p.add_argument("--node-cidr-mask-size", type=int, default=Config.node_cidr_mask_size)
    p.add_argument("--service-cluster-ip-range", default=Config.service_cluster_ip_range, metavar="CIDR",
                   help="Services' cluster IPs (IPv4, /12 to /28)")
    p.add_argument("--service-node-port-range", default=Config.service_node_port_range, metavar="FIRST-LAST",
                   help="Services' node ports")
    p.add_argument("--node-monitor-grace-period", type=float, default=Config.node_monitor_grace_seconds,
                   help="seconds without a heartbeat before a node's Ready becomes Unknown "
                        "(default %(default)g; Kubernetes: 40)")
    p.add_argument("--default-not-ready-toleration-seconds", type=int,
                   default=Config.default_not_ready_toleration_seconds,
                   help="tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration every new pod "
                        "gets unless it has its own (default %(default)d; Kubernetes: 300)")
    p.add_argument("--default-unreachable-toleration-seconds", type=int,
                   default=Config.default_unreachable_toleration_seconds,
                   help="likewise for node.kubernetes.io/unreachable:NoExecute (default %(default)d; Kubernetes: 300)")
    p.add_argument("--event-ttl", type=float, default=Config.event_ttl_seconds, metavar="SECONDS",
                   help="how long an Event is kept after its last update (default %(default)g, "
                        "as Kubernetes' 1h; 0 keeps them)")
    p.add_argument("--default-watch-cache-size", type=int, default=Config.watch_cache_size, metavar="EVENTS",
                   help="events the API server's watch cache keeps per kind (decision 38; default %(default)d); "
                        "0 serves lists and watches from etcd, one etcd watch per client")
    p.add_argument("--max-requests-inflight", type=int, default=Config.max_requests_inflight, metavar="N",
                   help="read-only requests served at once; more are refused with 429 and Retry-After "
                        "(default %(default)d, as kube-apiserver; 0: no limit)")
    p.add_argument("--max-mutating-requests-inflight", type=int, default=Config.max_mutating_requests_inflight,
                   metavar="N", help="mutating requests served at once (default %(default)d; 0: no limit)")
    p.add_argument("--no-controllers", action="store_true", help="serve the API only (no scheduler, controllers)")
    p.add_argument("--leader-elect", default="true", choices=["true", "false"],
                   help="run the scheduler and controllers only while holding the leader lease in etcd")
    p.add_argument("--leader-lease-seconds", type=float, default=Config.leader_lease_seconds)
    p.add_argument("--identity", default="", help="this replica's name in the leader lease")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    secure = p.add_argument_group("secure mode (decision 32: TLS, authentication, authorization; all or none)")
    secure.add_argument("--client-ca-file", default="", metavar="PATH",
                        help="the cluster CA: client certificates must chain to it")
    secure.add_argument("--tls-cert-file", default="", metavar="PATH", help="the API's serving certificate")
    secure.add_argument("--tls-private-key-file", default="", metavar="PATH")
    secure.add_argument("--token-auth-file", default="", metavar="PATH",
                        help='static bearer tokens for the REST API, a line each: token,user,uid,"group1,group2"')
    secure.add_argument("--kubelet-client-certificate", default="", metavar="PATH",
                        help="the control plane's client certificate: to the agents, and its own controllers'")
    secure.add_argument("--kubelet-client-key", default="", metavar="PATH")
    secure.add_argument("--etcd-cafile", default="", metavar="PATH", help="etcd over TLS: the CA of its certificate")
    secure.add_argument("--etcd-certfile", default="", metavar="PATH", help="etcd over TLS: this client's certificate")
    secure.add_argument("--etcd-keyfile", default="", metavar="PATH")
    secure.add_argument("--encryption-key-file", default="", metavar="PATH",
                        help="store Secrets encrypted (AES-GCM) with the keys of this file (NAME:BASE64 lines; "
                             "the first encrypts)")
    secure.add_argument("--service-account-signing-key-file", default="", metavar="PATH",
                        help="the EC P-256 key ServiceAccount tokens are signed with (default: sa.key beside "
                             "--client-ca-file, created when absent)")
    p.add_argument("--advertise-address", default="", metavar="IP",
                   help="the address pods reach the API at (the kubernetes Service's endpoint, at the REST "
                        "port; the REST API listens there too); default: the --rest-listen host")
    secure.add_argument("--service-account-issuer", default=Config.service_account_issuer, metavar="URL",
                        help="the tokens' iss claim, also the audience the API accepts (default %(default)s)")
    secure.add_argument("--cluster-signing-cert-file", default="", metavar="PATH",
                        help="the CA that signs nodes' CSRs (default: --client-ca-file)")
    secure.add_argument("--cluster-signing-key-file", default="", metavar="PATH",
                        help="its key (default: ca.key beside --client-ca-file)")
    secure.add_argument("--cluster-signing-duration", default="", metavar="DURATION",
                        help="the lifetime of the certificates it signs (default $SKIFF_CLUSTER_SIGNING_DURATION, "
                             "else 8760h)")
    a = p.parse_args(argv)
    config = Config(etcd=a.etcd, etcd_prefix=a.etcd_prefix, listen=a.listen, metrics_listen=a.metrics_listen,
                    rest_listen=a.rest_listen if a.rest_listen is not None else _default_rest_listen(a.listen),
                    cluster_cidr=a.cluster_cidr, node_cidr_mask_size=a.node_cidr_mask_size,
                    service_cluster_ip_range=a.service_cluster_ip_range,
                    service_node_port_range=a.service_node_port_range,
                    node_monitor_grace_seconds=a.node_monitor_grace_period, run_controllers=not a.no_controllers,
                    leader_elect=a.leader_elect == "true", leader_lease_seconds=a.leader_lease_seconds,
                    identity=a.identity, event_ttl_seconds=a.event_ttl, watch_cache_size=a.default_watch_cache_size,
                    max_requests_inflight=a.max_requests_inflight,
                    max_mutating_requests_inflight=a.max_mutating_requests_inflight,
                    default_not_ready_toleration_seconds=a.default_not_ready_toleration_seconds,
                    default_unreachable_toleration_seconds=a.default_unreachable_toleration_seconds,
                    client_ca_file=a.client_ca_file, tls_cert_file=a.tls_cert_file,
                    tls_private_key_file=a.tls_private_key_file, token_auth_file=a.token_auth_file,
                    kubelet_client_certificate=a.kubelet_client_certificate,
                    kubelet_client_key=a.kubelet_client_key, etcd_cafile=a.etcd_cafile,
                    etcd_certfile=a.etcd_certfile, etcd_keyfile=a.etcd_keyfile,
                    encryption_key_file=a.encryption_key_file,
                    service_account_signing_key_file=a.service_account_signing_key_file,
                    service_account_issuer=a.service_account_issuer, advertise_address=a.advertise_address,
                    cluster_signing_cert_file=a.cluster_signing_cert_file,
                    cluster_signing_key_file=a.cluster_signing_key_file,
                    cluster_signing_duration=a.cluster_signing_duration)
    problems = validate_config(config)
    if problems:
        p.error("; ".join(problems))
    return config, a.log_level


async def run(config: Config, *, stop: asyncio.Event) -> None:
    from controlplane.controllers.cronjob import CronJobController
    from controlplane.controllers.daemonset import DaemonSetController
    from controlplane.controllers.deployment import DeploymentController
    from controlplane.controllers.endpointslice import EndpointSliceController
    from controlplane.controllers.servicelb import ServiceLbController
    from controlplane.controllers.disruption import DisruptionController
    from controlplane.controllers.job import JobController
    from controlplane.controllers.garbagecollector import GarbageCollector
    from controlplane.controllers.horizontalpodautoscaler import HorizontalPodAutoscalerController
    from controlplane.controllers.nodeipam import NodeIpamController
    from controlplane.controllers.namespace import NamespaceController
    from controlplane.controllers.nodelifecycle import NodeLifecycleController
    from controlplane.controllers.tainteviction import TaintEvictionController
    from controlplane.controllers.podgc import PodGcController
    from controlplane.controllers.replicaset import ReplicaSetController
    from controlplane.events import EventRecorder
    from controlplane.leader import LeaderElector, default_identity
    from controlplane.scheduler.scheduler import Scheduler
    from skiff.controller import ControllerMetrics, SharedInformerFactory

    metrics = Metrics()
    store = Store(endpoint=config.etcd, root=config.etcd_prefix, event_ttl=config.event_ttl_seconds,
                  tls=_etcd_credentials(config), encryption=_encryption(config))
    admission = Admission(not_ready_toleration_seconds=config.default_not_ready_toleration_seconds,
                          unreachable_toleration_seconds=config.default_unreachable_toleration_seconds)
    security = _security(config, store)
    api = ApiServer(store=store, metrics=metrics, listen=config.listen, admission=admission,
                    tls=security.serving, guard=security.guard, agent_credentials=security.client,
                    watch_cache_size=config.watch_cache_size, max_requests_inflight=config.max_requests_inflight,
                    max_mutating_requests_inflight=config.max_mutating_requests_inflight)
    for authorizer in security.informed:   # the server's own caches of pods and RBAC (decision 44)
        authorizer.informers = api.service.registry.informers
    # Services' cluster IPs and node ports, allocated by the registry (controlplane/services/).
    allocations = ServiceAllocations(store=store, cluster_ip_range=config.service_cluster_ip_range,
                                     node_port_range=config.service_node_port_range)
    api.service.registry.hooks[allocations.kind_name] = allocations
    host, _, port = config.metrics_listen.rpartition(":")
    metrics_server = MetricsServer(metrics=metrics, host=host.strip("[]"), port=int(port))
    port = await api.start()
    # The REST front door: the same Registry and agent proxy as the gRPC service.
    rest = RestServer(registry=api.service.registry, proxy=api.proxy, listen=config.rest_listen,
                      ssl_context=security.rest_ssl, guard=security.guard,
                      also_listen=_advertised(config), inflight=api.inflight) if config.rest_listen else None
    if security.tokens is not None:   # serviceaccounts/token, REST and gRPC (decision 35)
        api.service.tokens = security.tokens
        security.tokens.cacher = api.cacher
        # Pods run as a ServiceAccount that exists, with its token mounted (controlplane/serviceaccounts/admission.py).
        from controlplane.serviceaccounts.admission import ServiceAccountAdmission
        api.service.registry.admission_plugins.setdefault("Pod", []).append(
            ServiceAccountAdmission(store=api.service.registry.store, informers=api.service.registry.informers))
        if rest is not None:
            rest.tokens = security.tokens
    if rest is not None:
        await rest.start()
    # The initial namespaces (default, kube-system, ...): in the background, as etcd may not answer yet.
    # Secure: also the default ClusterRoles and system:masters' binding (controlplane/rbac.py).
    bootstrap = asyncio.create_task(retry_async(lambda: _bootstrap(api.service.registry, secure=config.secure),
                                                retry_on=(StoreUnavailable,),
                                                backoff=Backoff(initial=0.2, maximum=5.0)), name="namespaces")
    # The allocations repaired from the Services (before the first is allocated), the `kubernetes` Service.
    services = asyncio.create_task(start_services(allocations, api.service.registry,
                                                  _advertised(config) or config.rest_listen),
                                   name="services")
    metrics_server.start()
    log.info("serving the API on %s, metrics on %s:%d, etcd %s%s", config.listen, host, metrics_server.port,
             config.etcd, config.etcd_prefix)
    if rest is not None:
        log.info("serving Kubernetes' REST API on %s", f"https://{config.rest_listen}" if config.secure
                 else f"http://{config.rest_listen} (plain HTTP)")
    client = ApiClient(f"{config.listen.rpartition(':')[0]}:{port}", credentials=security.client)
    factory = SharedInformerFactory(client, metrics=ControllerMetrics(metrics.registry))
    store.observe = metrics.observe_etcd
    # Readiness (issue 15): not ready while one of its informers has been failing or stalled past a bound.
    if rest is not None:
        rest.readiness = factory.problems
    metrics_server.routes["/readyz"] = lambda: _readyz(factory.problems())
    _serve_monitoring(metrics_server, factory=factory, client=client, etcd=config.etcd,
                      metrics_address=f"{host}:{metrics_server.port}")
    components = []
    if config.run_controllers:
        components = [
            Scheduler(client=client, factory=factory, metrics=metrics),
            NodeIpamController(client=client, factory=factory, cluster_cidr=config.cluster_cidr,
                               node_cidr_mask_size=config.node_cidr_mask_size),
            NodeLifecycleController(client=client, factory=factory, grace_seconds=config.node_monitor_grace_seconds),
            TaintEvictionController(client=client, factory=factory),
            PodGcController(client=client, factory=factory, quarantine_seconds=config.node_monitor_grace_seconds),
            NamespaceController(client=client, factory=factory),
            EndpointSliceController(client=client, factory=factory),
            ServiceLbController(client=client, factory=factory),
            GarbageCollector(client=client, factory=factory),   # an informer for every kind
            ReplicaSetController(client=client, factory=factory,
                                 recorder=EventRecorder(client=client, component="replicaset-controller")),
            DeploymentController(client=client, factory=factory,
                                 recorder=EventRecorder(client=client, component="deployment-controller")),
            JobController(client=client, factory=factory,
                          recorder=EventRecorder(client=client, component="job-controller")),
            CronJobController(client=client, factory=factory,
                              recorder=EventRecorder(client=client, component="cronjob-controller")),
            DaemonSetController(client=client, factory=factory,
                                recorder=EventRecorder(client=client, component="daemonset-controller")),
            HorizontalPodAutoscalerController(client=client, factory=factory, recorder=EventRecorder(
                client=client, component="horizontal-pod-autoscaler")),
            DisruptionController(client=client, factory=factory,
                                 recorder=EventRecorder(client=client, component="controllermanager")),
        ]
        if config.secure:   # `default` in every namespace, and kube-root-ca.crt (decision 35)
            from pathlib import Path

            from controlplane.controllers.serviceaccount import ServiceAccountsController
            components.append(ServiceAccountsController(client=client, factory=factory,
                                                        ca_pem=Path(config.client_ca_file).read_text()))
        if config.secure:   # bootstrap tokens, CSRs and their signer (decision 36)
            from controlplane import joining
            components += joining.controllers(
                client=client, factory=factory, client_ca_file=config.client_ca_file, rest_listen=config.rest_listen,
                listen=config.listen, signing_cert_file=config.cluster_signing_cert_file,
                signing_key_file=config.cluster_signing_key_file,
                duration=joining.signing_duration(config.cluster_signing_duration))

    async def lead() -> None:
        # All or nothing: if one component dies, the others stop and the error surfaces.
        # The informers run while leading (a follower keeps no caches) and start again with it.
        metrics.leader.labels("skiff-controlplane").set(1)
        try:
            await asyncio.gather(*(c.run() for c in components))
        finally:
            metrics.leader.labels("skiff-controlplane").set(0)
            await factory.stop()

    if not components:
        work = asyncio.create_task(stop.wait(), name="api-only")
    elif config.leader_elect:
        elector = LeaderElector(client=client, identity=config.identity or default_identity(),
                                lease_seconds=config.leader_lease_seconds)
        work = asyncio.create_task(elector.run(lead), name="leader-election")
    else:
        work = asyncio.create_task(lead(), name="controllers")
    try:
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, work], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if work in done and work.exception() is not None:
            log.error("%s failed: %s", work.get_name(), work.exception())
            raise work.exception()
    finally:
        log.info("shutting down")
        work.cancel()
        bootstrap.cancel()
        services.cancel()
        await asyncio.gather(work, bootstrap, services, return_exceptions=True)
        await client.close()
        if rest is not None:
            await rest.stop()
        await api.stop()
        await metrics_server.stop()
        await store.close()


def _readyz(problems: list[str]) -> tuple[str, bytes, int]:
    """/readyz of the metrics port (what `skiff status` reads), worded as the REST door's."""
    if not problems:
        return "text/plain", b"ok\n", 200
    text = "".join(f"[-]informer failed: {p}\n" for p in problems) + "readyz check failed\n"
    return "text/plain", text.encode(), 503


def _encryption(config: Config):
    if not config.encryption_key_file:
        return None
    from controlplane.store.encryption import EncryptionError, SecretEncryption
    try:
        return SecretEncryption.from_file(config.encryption_key_file)
    except EncryptionError as exc:
        raise OSError(str(exc)) from None


def _etcd_credentials(config: Config):
    if not config.etcd_cafile:
        return None
    from skiff.pki import Credentials, PkiError
    try:
        return Credentials.load(ca=config.etcd_cafile, cert=config.etcd_certfile, key=config.etcd_keyfile)
    except PkiError as exc:
        raise OSError(str(exc)) from None


@dataclass(frozen=True)
class _Security:
    serving: "Credentials | None" = None      # the API's certificate and key, and the client CA
    client: "Credentials | None" = None       # the control plane's own client certificate
    guard: "Guard | None" = None
    rest_ssl: "ssl.SSLContext | None" = None
    tokens: "TokenIssuer | None" = None       # ServiceAccount tokens (controlplane/serviceaccounts/)
    informed: tuple = ()   # the authorizers reading informers: given the API server's once it is made


def _security(config: Config, store) -> _Security:
    """Secure mode's parts, from the files the flags name (OSError names a file that cannot be read)."""
    if not config.secure:
        return _Security()
    import ssl

    from controlplane.auth import Authenticator, Authorizer, Guard, masters
    from controlplane.nodeauthorizer import NodeAuthorizer
    from controlplane.rbac import RbacAuthorizer
    from skiff.pki import Credentials, PkiError
    try:
        serving = Credentials.load(ca=config.client_ca_file, cert=config.tls_cert_file,
                                   key=config.tls_private_key_file)
        client = Credentials.load(ca=config.client_ca_file, cert=config.kubelet_client_certificate,
                                  key=config.kubelet_client_key)
        authenticator = Authenticator.from_token_file(config.token_auth_file)
    except PkiError as exc:
        raise OSError(str(exc)) from None
    rest_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.client_ca_file)
    rest_ssl.load_cert_chain(config.tls_cert_file, config.tls_private_key_file)
    rest_ssl.verify_mode = ssl.CERT_OPTIONAL   # a certificate is checked when given; else a bearer token
    informed = (NodeAuthorizer(store), RbacAuthorizer(store))
    authorizer = Authorizer([masters, *(a.decide for a in informed)])
    from controlplane import joining
    joining.add_authentication(authenticator, store)   # bootstrap tokens (decision 36)
    tokens = _service_account_tokens(config, store, authenticator)
    return _Security(serving=serving, client=client, guard=Guard(authenticator, authorizer, joining.admission(store)),
                     rest_ssl=rest_ssl,
                     tokens=tokens, informed=informed)


def _service_account_tokens(config: Config, store, authenticator) -> "TokenIssuer":
    """The signing key (created beside the CA when absent), the TokenRequest issuer, and the
    ServiceAccount link of the bearer-token chain (decision 35)."""
    from pathlib import Path

    from controlplane.serviceaccounts.authenticator import ServiceAccountTokens
    from controlplane.serviceaccounts.keys import KEY_NAME, ensure_signing_key
    from controlplane.serviceaccounts.tokenrequest import TokenIssuer
    from controlplane.serviceaccounts.tokens import TokenSigner, key_id
    path = Path(config.service_account_signing_key_file or Path(config.client_ca_file).parent / KEY_NAME)
    try:
        key = ensure_signing_key(path)
    except ValueError as exc:
        raise OSError(str(exc)) from None
    log.info("ServiceAccount tokens signed with %s (key id %s)", path, key_id(key.public_key()))
    signer = TokenSigner(key, issuer=config.service_account_issuer)
    authenticator.add_token_authenticator(ServiceAccountTokens(signer.verifier(), store))
    return TokenIssuer(signer=signer, store=store)


def _serve_monitoring(server: MetricsServer, *, factory, client: ApiClient, etcd: str,
                      metrics_address: str) -> None:
    """kube-state metrics and the http_sd lists on the /metrics server, from
    the shared informers (filled while this replica leads)."""
    from controlplane.discovery import Discovery
    from controlplane.events import EventRecorder
    from controlplane.kubestate import KubeStateMetrics

    loop = asyncio.get_running_loop()
    recorder = EventRecorder(client=client, component="skiff-discovery")
    pending: set[asyncio.Task] = set()

    def warn(pod, message: str) -> None:   # called on the HTTP thread
        def record() -> None:
            task = loop.create_task(recorder.record(pod, type_="Warning", reason="FailedDiscovery",
                                                    message=message))
            pending.add(task)
            task.add_done_callback(pending.discard)
        loop.call_soon_threadsafe(record)

    kube_state = KubeStateMetrics(factory)
    discovery = Discovery(nodes=factory.informer("Node"), pods=factory.informer("Pod"),
                          metrics_address=metrics_address, etcd_address=etcd, warn=warn)
    server.routes.update({"/metrics/kube-state-metrics": kube_state.render, **discovery.routes()})


def main(argv: list[str] | None = None) -> int:
    config, level = parse_args(argv)
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aetcd").setLevel(logging.WARNING)

    async def entry() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(config, stop=stop)

    try:
        asyncio.run(entry())
    except OSError as exc:
        print(f"skiff-controlplane: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
