"""Service (v1): a stable address (a ClusterIP, a port on every node, a load
balancer's address, or a DNS name) in front of the pods its selector picks.

Defaults as Kubernetes' (SetDefaults_Service): type ClusterIP, sessionAffinity
None (ClientIP: a 10800 s timeout), protocol TCP, targetPort = port,
externalTrafficPolicy Cluster for NodePort and LoadBalancer,
internalTrafficPolicy Cluster, allocateLoadBalancerNodePorts true, one IPv4
family. Checks as ValidateService, with Kubernetes' field paths and wording:
ports (required but for headless and ExternalName Services; names required
with more than one, DNS-1123 labels, unique; 1-65535; unique port/protocol),
targetPort a port number or an IANA service name, nodePort only for NodePort
and LoadBalancer, clusterIP an IP or "None" (not for NodePort/LoadBalancer),
externalName a DNS-1123 subdomain, and the enumerations. The cluster IP may
not change once set (except by becoming or leaving an ExternalName Service).

The API server (controlplane/services/) allocates clusterIP and nodePorts
after these checks and releases them on delete; nothing here does I/O.
"""
from __future__ import annotations

import ipaddress
import re
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import services_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError, dns1123_subdomain_error, label_value_error, \
    port_name_errors, qualified_name_error, quoted

CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME = "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"
TYPES = (CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT)
PROTOCOLS = ("SCTP", "TCP", "UDP")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
HEADLESS = "None"
DEFAULT_AFFINITY_TIMEOUT = 10800  # three hours, Kubernetes' DefaultClientIPServiceAffinitySeconds
MAX_AFFINITY_TIMEOUT = 86400
_IANA_SVC_NAME = re.compile(r"^[-a-z0-9]+$")
_NUMBER = re.compile(r"^[0-9]+$")


def is_headless(svc: Message) -> bool:
    return svc.spec.cluster_ip == HEADLESS


def uses_node_ports(svc: Message) -> bool:
    """NodePort Services, and LoadBalancer ones unless allocateLoadBalancerNodePorts is false."""
    spec = svc.spec
    if spec.type == NODE_PORT:
        return True
    return spec.type == LOAD_BALANCER and (not spec.HasField("allocate_load_balancer_node_ports")
                                           or spec.allocate_load_balancer_node_ports)


def unsupported(value: str, supported: tuple[str, ...]) -> str:
    return f"Unsupported value: {quoted(value)}: supported values: " + ", ".join(quoted(s) for s in supported)


def port_name_error(value: str) -> str | None:
    """Kubernetes' IsValidPortName (IANA_SVC_NAME), for a targetPort given by name."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if not re.search(r"[a-z]", value):
        return "must contain at least one letter (a-z)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def target_port_number(port: Message) -> int | None:
    """The targetPort as a number, or None when it names a container port."""
    return int(port.target_port) if _NUMBER.match(port.target_port) else None


class ServiceStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        spec.type = spec.type or CLUSTER_IP
        spec.session_affinity = spec.session_affinity or "None"
        if spec.session_affinity == "ClientIP":
            client_ip = spec.session_affinity_config.client_ip
            if not client_ip.HasField("timeout_seconds"):
                client_ip.timeout_seconds = DEFAULT_AFFINITY_TIMEOUT
        for port in spec.ports:
            port.protocol = port.protocol or "TCP"
            if not port.target_port or port.target_port == "0":
                port.target_port = str(port.port)
        if spec.type in (NODE_PORT, LOAD_BALANCER) and not spec.external_traffic_policy:
            spec.external_traffic_policy = "Cluster"
        if spec.type == LOAD_BALANCER and not spec.HasField("allocate_load_balancer_node_ports"):
            spec.allocate_load_balancer_node_ports = True
        if spec.type != EXTERNAL_NAME:
            if not spec.HasField("internal_traffic_policy"):
                spec.internal_traffic_policy = "Cluster"
            if spec.cluster_ip and not spec.cluster_ips:
                spec.cluster_ips.append(spec.cluster_ip)
            elif spec.cluster_ips and not spec.cluster_ip:
                spec.cluster_ip = spec.cluster_ips[0]
            if spec.cluster_ip and spec.cluster_ip != HEADLESS or spec.cluster_ip == HEADLESS and spec.selector:
                if not spec.ip_families:
                    spec.ip_families.append("IPv4")
                if not spec.HasField("ip_family_policy"):
                    spec.ip_family_policy = "SingleStack"
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        # The manifest reader validates before defaults run: what is left out is checked as its default.
        defaulted = type(obj)()
        defaulted.CopyFrom(obj)
        return super().validate(obj) + validate_spec(self.defaults(defaulted).spec)

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        errors = []
        was, now = old.spec, new.spec
        # Becoming (or leaving) an ExternalName Service drops (or allocates) the IP; otherwise it is fixed.
        if was.type != EXTERNAL_NAME and now.type != EXTERNAL_NAME and was.cluster_ip:
            if list(was.cluster_ips or [was.cluster_ip]) != list(now.cluster_ips or [now.cluster_ip]):
                errors.append(FieldError("spec.clusterIPs[0]", f"Invalid value: {go_list(now.cluster_ips)}: "
                                                               f"may not change once set"))
        return errors + super().validate_update(old, new)

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def prepare_update(self, old: Message, new: Message) -> Message:
        return carry_allocated(old, super().prepare_update(old, new))

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        spec = obj.spec
        row = [obj.metadata.name, spec.type, spec.cluster_ip or "<none>", external_ip_text(obj), ports_text(obj),
               humanize.age(obj.metadata.creation_timestamp, now=now)]
        return row + ([selector_text(spec.selector)] if wide else [])

    def describe_related(self, obj: Message) -> dict[str, tuple[str, str]]:
        return {"Endpoints": (obj.metadata.namespace, f"metadata.name={obj.metadata.name}")}

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        return describe_service(obj, ctx)


def carry_allocated(old: Message, new: Message) -> Message:
    """What the server allocated and an update (a manifest applied again) leaves out stays, as
    Kubernetes' patchAllocatedValues: the cluster IPs, and each port's nodePort (matched by port and
    protocol) while the type still uses node ports."""
    was, spec = old.spec, new.spec
    if was.type != EXTERNAL_NAME and spec.type != EXTERNAL_NAME and not spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ip = was.cluster_ip
        spec.cluster_ips[:] = was.cluster_ips
        if not spec.ip_families:
            spec.ip_families[:] = was.ip_families
        if not spec.HasField("ip_family_policy") and was.HasField("ip_family_policy"):
            spec.ip_family_policy = was.ip_family_policy
    if uses_node_ports(new):
        old_ports = {(p.port, p.protocol): p.node_port for p in was.ports if p.node_port}
        for port in spec.ports:
            if not port.node_port:
                port.node_port = old_ports.get((port.port, port.protocol), 0)
        if not spec.health_check_node_port and spec.external_traffic_policy == "Local":
            spec.health_check_node_port = was.health_check_node_port
    return new


# ---------------------------------------------------------------- validation

def go_list(values) -> str:
    return "[]string{" + ", ".join(quoted(v) for v in values) + "}"


def validate_spec(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.type not in TYPES:
        errors.append(FieldError("spec.type", unsupported(spec.type, TYPES)))
    headless = spec.cluster_ip == HEADLESS
    if not spec.ports and not headless and spec.type != EXTERNAL_NAME:
        errors.append(FieldError("spec.ports", "Required value"))
    errors += _port_errors(spec)
    errors += _cluster_ip_errors(spec)
    if spec.type == EXTERNAL_NAME:
        name = spec.external_name.removesuffix(".")
        if not spec.external_name:
            errors.append(FieldError("spec.externalName", "Required value"))
        elif problem := dns1123_subdomain_error(name):
            errors.append(FieldError("spec.externalName",
                                     f"Invalid value: {quoted(spec.external_name)}: {problem.split(': ', 1)[-1]}"))
    for key, value in spec.selector.items():
        if problem := qualified_name_error(key):
            errors.append(FieldError("spec.selector", f"Invalid value: {quoted(key)}: {problem}"))
        if problem := label_value_error(value):
            errors.append(FieldError(f"spec.selector", f"Invalid value: {quoted(value)}: {problem}"))
    if spec.session_affinity not in AFFINITIES:
        errors.append(FieldError("spec.sessionAffinity", unsupported(spec.session_affinity, AFFINITIES)))
    elif spec.session_affinity == "ClientIP":
        timeout = spec.session_affinity_config.client_ip.timeout_seconds
        if not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
            errors.append(FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                     f"Invalid value: {timeout}: must be greater than 0 and less than "
                                     f"{MAX_AFFINITY_TIMEOUT}"))
    elif spec.HasField("session_affinity_config") and spec.session_affinity_config.HasField("client_ip"):
        errors.append(FieldError("spec.sessionAffinityConfig",
                                 "Invalid value: must not be set when session affinity is None"))
    if spec.external_traffic_policy:
        if spec.type not in (NODE_PORT, LOAD_BALANCER):
            errors.append(FieldError("spec.externalTrafficPolicy",
                                     f"Invalid value: {quoted(spec.external_traffic_policy)}: may only be set when "
                                     f"`type` is 'NodePort' or 'LoadBalancer'"))
        elif spec.external_traffic_policy not in TRAFFIC_POLICIES:
            errors.append(FieldError("spec.externalTrafficPolicy",
                                     unsupported(spec.external_traffic_policy, TRAFFIC_POLICIES)))
    if spec.HasField("internal_traffic_policy") and spec.internal_traffic_policy not in TRAFFIC_POLICIES:
        errors.append(FieldError("spec.internalTrafficPolicy",
                                 unsupported(spec.internal_traffic_policy, TRAFFIC_POLICIES)))
    if spec.HasField("ip_family_policy") and spec.ip_family_policy not in IP_FAMILY_POLICIES:
        errors.append(FieldError("spec.ipFamilyPolicy", unsupported(spec.ip_family_policy, IP_FAMILY_POLICIES)))
    for i, family in enumerate(spec.ip_families):
        if family not in ("IPv4", "IPv6"):
            errors.append(FieldError(f"spec.ipFamilies[{i}]", unsupported(family, ("IPv4", "IPv6"))))
    if spec.load_balancer_ip and spec.type != LOAD_BALANCER:
        errors.append(FieldError("spec.loadBalancerIP", "Forbidden: may only be used when `type` is 'LoadBalancer'"))
    elif spec.load_balancer_ip and _ip_error(spec.load_balancer_ip):
        errors.append(FieldError("spec.loadBalancerIP", f"Invalid value: {quoted(spec.load_balancer_ip)}: "
                                                        f"must be a valid IP address"))
    for i, ip in enumerate(spec.external_ips):
        if _ip_error(ip):
            errors.append(FieldError(f"spec.externalIPs[{i}]", f"Invalid value: {quoted(ip)}: "
                                                               f"must be a valid IP address, (e.g. 10.9.8.7 or "
                                                               f"2001:db8::ffff)"))
    return errors


def _port_errors(spec: Message) -> list[FieldError]:
    errors = port_name_errors([p.name for p in spec.ports], "spec.ports", required=len(spec.ports) > 1)
    keys: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        where = f"spec.ports[{i}]"
        if port.protocol not in PROTOCOLS:
            errors.append(FieldError(f"{where}.protocol", unsupported(port.protocol, PROTOCOLS)))
        if not 1 <= port.port <= 65535:
            errors.append(FieldError(f"{where}.port", f"Invalid value: {port.port}: "
                                                      f"must be between 1 and 65535, inclusive"))
        elif (port.port, port.protocol) in keys:
            errors.append(FieldError(where, f"Duplicate value: map[string]interface {{}}{{\"port\":{port.port}, "
                                            f"\"protocol\":{quoted(port.protocol)}}}"))
        keys.add((port.port, port.protocol))
        number = target_port_number(port)
        if number is not None:
            if not 1 <= number <= 65535:
                errors.append(FieldError(f"{where}.targetPort", f"Invalid value: {number}: "
                                                                f"must be between 1 and 65535, inclusive"))
        elif problem := port_name_error(port.target_port):
            errors.append(FieldError(f"{where}.targetPort", f"Invalid value: {quoted(port.target_port)}: {problem}"))
        if port.node_port:
            if spec.type not in (NODE_PORT, LOAD_BALANCER):
                errors.append(FieldError(f"{where}.nodePort",
                                         f"Forbidden: may not be used when `type` is '{spec.type}'"))
            elif not 1 <= port.node_port <= 65535:
                errors.append(FieldError(f"{where}.nodePort", f"Invalid value: {port.node_port}: "
                                                              f"must be between 1 and 65535, inclusive"))
            elif (port.node_port, port.protocol) in node_ports:
                errors.append(FieldError(f"{where}.nodePort", f"Duplicate value: {port.node_port}"))
            node_ports.add((port.node_port, port.protocol))
    return errors


def _ip_error(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return True
    return False


def _cluster_ip_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.type == EXTERNAL_NAME:
        if spec.cluster_ip and spec.cluster_ip != HEADLESS or spec.cluster_ips:
            errors.append(FieldError("spec.clusterIPs", "Forbidden: may not be set for ExternalName services"))
        return errors
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        errors.append(FieldError("spec.clusterIPs", f"Invalid value: {go_list(spec.cluster_ips)}: element [0] must "
                                                    f"match clusterIP"))
    if len(spec.cluster_ips) > 2:
        errors.append(FieldError("spec.clusterIPs", "Invalid value: may not have more than two entries"))
    for i, ip in enumerate(spec.cluster_ips):
        if ip == HEADLESS:
            if i > 0 or len(spec.cluster_ips) > 1:
                errors.append(FieldError(f"spec.clusterIPs[{i}]", f"Invalid value: {quoted(ip)}: "
                                                                  f"must be empty when the first element is 'None'"))
            elif spec.type in (NODE_PORT, LOAD_BALANCER):
                errors.append(FieldError(f"spec.clusterIPs[{i}]", f"Invalid value: {quoted(ip)}: may not be set to "
                                                                  f"'None' for {spec.type} services"))
        elif _ip_error(ip):
            errors.append(FieldError(f"spec.clusterIPs[{i}]", f"Invalid value: {quoted(ip)}: must be a valid IP "
                                                              f"address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    return errors


# ---------------------------------------------------------------- printing

def ports_text(svc: Message) -> str:
    """kubectl's PORT(S): 80/TCP, 80:30080/TCP for a node port."""
    parts = []
    for port in svc.spec.ports:
        parts.append(f"{port.port}:{port.node_port}/{port.protocol}" if port.node_port
                     else f"{port.port}/{port.protocol}")
    return ",".join(parts) or "<none>"


def external_ip_text(svc: Message) -> str:
    """kubectl's EXTERNAL-IP: the externalName, the load balancer's addresses (<pending> before it has
    any) and externalIPs."""
    spec = svc.spec
    if spec.type == EXTERNAL_NAME:
        return spec.external_name
    addresses = list(spec.external_ips)
    if spec.type == LOAD_BALANCER:
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        return ",".join(ingress + addresses) or "<pending>"
    return ",".join(addresses) or "<none>"


def selector_text(selector) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def describe_service(svc: Message, ctx: DescribeContext) -> str:
    text = describing.Text()
    w = 26
    m, spec = svc.metadata, svc.spec
    text.multiline("Name", m.name, width=w)
    text.multiline("Namespace", m.namespace, width=w)
    text.multiline("Labels", describing.map_text(m.labels), width=w)
    text.multiline("Annotations", describing.map_text(m.annotations), width=w)
    text.multiline("Selector", selector_text(spec.selector).replace("<none>", ""), width=w)
    text.multiline("Type", spec.type, width=w)
    if spec.type != EXTERNAL_NAME:
        text.multiline("IP Family Policy", spec.ip_family_policy or "<none>", width=w)
        text.multiline("IP Families", ",".join(spec.ip_families) or "<none>", width=w)
        text.multiline("IP", spec.cluster_ip, width=w)
        text.multiline("IPs", ",".join(spec.cluster_ips) or "<none>", width=w)
    else:
        text.multiline("External Name", spec.external_name, width=w)
    if spec.external_ips:
        text.multiline("External IPs", ",".join(spec.external_ips), width=w)
    if spec.load_balancer_ip:
        text.multiline("IP", spec.load_balancer_ip, width=w)
    ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
    if ingress:
        text.multiline("LoadBalancer Ingress", ", ".join(ingress), width=w)
    endpoints = ctx.related.get("Endpoints", [])
    for port in spec.ports:
        name = port.name or "<unset>"
        text.multiline("Port", f"{name}  {port.port}/{port.protocol}", width=w)
        target = port.target_port
        text.multiline("TargetPort", f"{target}/{port.protocol}", width=w)
        if port.node_port:
            text.multiline("NodePort", f"{name}  {port.node_port}/{port.protocol}", width=w)
        text.multiline("Endpoints", _endpoints_for_port(endpoints, port.name), width=w)
    text.multiline("Session Affinity", spec.session_affinity, width=w)
    if spec.session_affinity == "ClientIP":
        text.multiline("Session Affinity Timeout",
                       f"{spec.session_affinity_config.client_ip.timeout_seconds} seconds", width=w)
    if spec.external_traffic_policy:
        text.multiline("External Traffic Policy", spec.external_traffic_policy, width=w)
    if spec.HasField("internal_traffic_policy"):
        text.multiline("Internal Traffic Policy", spec.internal_traffic_policy, width=w)
    describing.events(text, ctx.events, now=ctx.now)
    return str(text)


def _endpoints_for_port(endpoints: list[Message], port_name: str) -> str:
    """kubectl's formatEndpoints for one port: ready addresses as ip:port, the first three, then "+ N more..."."""
    items = []
    for ep in endpoints:
        for subset in ep.subsets:
            for p in subset.ports:
                if p.name == port_name:
                    items += [f"{a.ip}:{p.port}" for a in subset.addresses]
    if not items:
        return "<none>"
    shown = ",".join(items[:3])
    return shown + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


KIND = Kind("Service", "v1", "services", "service", services_pb2.Service, True, ("service", "svc"),
            strategy=ServiceStrategy())
