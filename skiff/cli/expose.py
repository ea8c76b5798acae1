"""`skiff expose TYPE/NAME --port P`: a Service in front of a workload, as
kubectl expose — the selector is the workload's (a deployment's or replica
set's matchLabels, a pod's labels, a service's selector), the labels too.

    skiff expose deploy/web --port 80 --target-port 8080 --type NodePort
    service/web exposed

Without --port the container ports are used (named port-1, port-2 … when
there are several); without --target-port each port targets itself.
"""
from __future__ import annotations

import argparse

from google.protobuf.message import Message

from proto.skiff.v1 import services_pb2
from skiff.api.kinds import service as services
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import create_and_report, intermixed, not_found, parse_resources
from skiff.client import ApiClient, NotFound

EXPOSABLE = ("Deployment", "ReplicaSet", "Pod", "Service")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = intermixed(subparsers.add_parser(
        "expose", help="expose a deployment, replica set, pod or service as a new Service",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a Service selecting the resource's pods (its selector, or a pod's labels).",
        epilog="examples:\n  skiff expose deploy/web --port 80 --target-port 8080\n"
               "  skiff expose deploy web --port 80 --type NodePort\n"
               "  skiff expose pod/db --port 5432 --name db --cluster-ip None"))
    p.add_argument("resource", metavar="TYPE/NAME|TYPE NAME", nargs="+")
    p.add_argument("--port", type=int, default=0, metavar="P", help="the port the service serves on")
    p.add_argument("--target-port", default="", metavar="T",
                   help="the container port (number or name) to send to (default: --port)")
    p.add_argument("--type", default="", choices=["ClusterIP", "NodePort", "LoadBalancer"],
                   help="the service type (default ClusterIP)")
    p.add_argument("--name", default="", help="the service's name (default: the resource's)")
    p.add_argument("--protocol", default="", choices=["TCP", "UDP", "SCTP"], help="the port's protocol (default TCP)")
    p.add_argument("--cluster-ip", default="", metavar="IP", help="the cluster IP to ask for ('None': headless)")
    p.add_argument("--session-affinity", default="", choices=["None", "ClientIP"])
    p.add_argument("--selector", default="", metavar="K=V,...", help="the selector (default: the resource's)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def selector_of(kind: str, obj: Message) -> dict[str, str]:
    """What kubectl expose selects for `obj`: a CliError when it cannot."""
    if kind in ("Deployment", "ReplicaSet"):
        sel = obj.spec.selector
        if sel.match_expressions:
            raise CliError(f"couldn't convert expressions - \"{sel.match_expressions[0].key} "
                           f"{sel.match_expressions[0].operator.lower()} ...\" to map-based selector format")
        return dict(sel.match_labels)
    if kind == "Pod":
        labels = dict(obj.metadata.labels)
        if not labels:
            raise CliError(f"the pod has no labels and cannot be exposed")
        return labels
    return dict(obj.spec.selector)


def container_ports(kind: str, obj: Message) -> list[tuple[int, str]]:
    if kind == "Service":
        return [(p.port, p.protocol) for p in obj.spec.ports]
    spec = obj.spec if kind == "Pod" else obj.spec.template.spec
    return [(cp.container_port, cp.protocol or "TCP") for c in spec.containers for cp in c.ports]


def build(kind: str, obj: Message, args: argparse.Namespace) -> services_pb2.Service:
    svc = services_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = args.name or obj.metadata.name
    svc.metadata.namespace = obj.metadata.namespace
    svc.metadata.labels.update(obj.metadata.labels)
    if args.selector:
        try:
            svc.spec.selector.update(dict(pair.split("=", 1) for pair in args.selector.split(",")))
        except ValueError:
            raise CliError(f"--selector {args.selector!r}: expected KEY=VALUE,...") from None
    else:
        svc.spec.selector.update(selector_of(kind, obj))
    if args.port:
        ports = [(args.port, args.protocol or "TCP")]
    else:
        ports = container_ports(kind, obj)
        if not ports:
            raise CliError("couldn't find port via --port flag or introspection")
    for i, (port, protocol) in enumerate(ports):
        p = svc.spec.ports.add(port=port, protocol=args.protocol or protocol,
                               target_port=args.target_port or str(port))
        if len(ports) > 1:
            p.name = f"port-{i + 1}"
    if args.type:
        svc.spec.type = args.type
    if args.cluster_ip:
        svc.spec.cluster_ip = args.cluster_ip
    if args.session_affinity:
        svc.spec.session_affinity = args.session_affinity
    return svc


def run(args: argparse.Namespace) -> int:
    targets = [(r.kind, name) for r in parse_resources(args.resource) for name in r.names]
    if len(targets) != 1:
        raise CliError("exactly one resource must be specified as <resource> <name> or <resource>/<name>")
    [(kind, name)] = targets
    if kind.name not in EXPOSABLE:
        raise CliError(f"cannot expose a {kind.name}")
    if args.port and not 1 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: must be between 1 and 65535, inclusive")
    namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        try:
            obj = await client.get(kind.name, name, namespace)
        except NotFound:
            raise CliError(not_found(kind, name)) from None
        svc = build(kind.name, obj, args)
        errors = services.KIND.strategy.validate(services.KIND.strategy.defaults(svc))
        if errors:
            raise CliError(f'The Service "{svc.metadata.name}" is invalid: ' + "; ".join(map(str, errors)))
        await create_and_report(client, svc, verb="exposed", exists=f'Error from server (AlreadyExists): services '
                                                                   f'"{svc.metadata.name}" already exists')
        return 0
    return call_api(args, body)


# ---------------------------------------------------------------- skiff create service

def register_create(what: argparse._SubParsersAction) -> None:
    """`skiff create service clusterip|nodeport|loadbalancer NAME --tcp=P[:T]`, as kubectl's."""
    s = what.add_parser("service", aliases=["svc"], help="create a service",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Create a service of the given type, selecting app=NAME.",
                        epilog="examples:\n  skiff create service clusterip web --tcp=80:8080\n"
                               "  skiff create service nodeport web --tcp=80:8080 --node-port=30080")
    s.add_argument("type", choices=["clusterip", "nodeport", "loadbalancer"])
    s.add_argument("name", metavar="NAME")
    s.add_argument("--tcp", action="append", default=[], metavar="PORT[:TARGET]",
                   help="a port and its target port (repeatable)")
    s.add_argument("--node-port", type=int, default=0, metavar="PORT", help="the node port (nodeport only)")
    s.add_argument("--clusterip", default="", metavar="IP", help="the cluster IP to ask for ('None': headless)")
    add_namespace_flags(s)
    s.set_defaults(func=run_create)


def created_service(kind: str, name: str, tcp: list[str], *, node_port: int = 0,
                    cluster_ip: str = "") -> services_pb2.Service:
    """What kubectl create service makes: selector and label app=NAME, ports named PORT-TARGET."""
    types = {"clusterip": services.CLUSTER_IP, "nodeport": services.NODE_PORT,
             "loadbalancer": services.LOAD_BALANCER}
    svc = services_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.labels["app"] = name
    svc.spec.selector["app"] = name
    svc.spec.type = types[kind]
    svc.spec.cluster_ip = cluster_ip
    if not tcp and cluster_ip != services.HEADLESS:
        raise CliError("at least one tcp port specifier must be provided")
    for spec in tcp:
        port, _, target = spec.partition(":")
        if not port.isdigit() or (target and not target.isdigit() and not target.isalnum()):
            raise CliError(f"--tcp {spec!r}: expected PORT or PORT:TARGET")
        p = svc.spec.ports.add(name=f"{port}-{target or port}", protocol="TCP", port=int(port),
                               target_port=target or port)
        if node_port:
            p.node_port = node_port
    return svc


def run_create(args: argparse.Namespace) -> int:
    if args.node_port and args.type != "nodeport":
        raise CliError("--node-port is only for nodeport services")
    svc = created_service(args.type, args.name, args.tcp, node_port=args.node_port, cluster_ip=args.clusterip)
    svc.metadata.namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        await create_and_report(client, svc, exists=f'Error from server (AlreadyExists): services "{args.name}" '
                                                    f'already exists')
        return 0
    return call_api(args, body)
