"""NodePorts as a pure function: Kubernetes' hostPort conflict rule, and a
Deployment's hostPort pods spread one per node by the whole schedule()."""
from controlplane.scheduler import plugins  # noqa: F401 - registers the plugins
from controlplane.scheduler.framework import NodeInfo
from controlplane.scheduler.plugins import node_ports
from controlplane.scheduler.plugins.node_ports import conflicts
from controlplane.scheduler.scheduler import schedule
from proto.skiff.v1 import types_pb2
from tests.controlplane.scheduler.test_plugins import node


def pod(name: str = "p", *ports: dict, sidecar_port: dict | None = None) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    c = p.spec.containers.add(name="c", image="web")
    for port in ports:
        c.ports.add(**port)
    if sidecar_port:
        s = p.spec.init_containers.add(name="s", image="proxy", restart_policy="Always")
        s.ports.add(**sidecar_port)
    return p


def on(*pods: types_pb2.Pod) -> NodeInfo:
    return NodeInfo.build(node("n"), list(pods))


def test_the_conflict_rule():
    assert conflicts(("0.0.0.0", "TCP", 80), [("10.0.0.1", "TCP", 80)])      # 0.0.0.0 is every address
    assert conflicts(("10.0.0.1", "TCP", 80), [("0.0.0.0", "TCP", 80)])
    assert conflicts(("10.0.0.1", "TCP", 80), [("10.0.0.1", "TCP", 80)])
    assert not conflicts(("10.0.0.1", "TCP", 80), [("10.0.0.2", "TCP", 80)])  # two addresses, one port each
    assert not conflicts(("0.0.0.0", "UDP", 80), [("0.0.0.0", "TCP", 80)])     # protocols apart
    assert not conflicts(("0.0.0.0", "TCP", 81), [("0.0.0.0", "TCP", 80)])


def test_a_taken_host_port_does_not_fit_defaults_filled_in():
    web = {"container_port": 5000, "host_port": 5000}
    assert node_ports.fits(pod("a", web), on())
    assert not node_ports.fits(pod("b", web), on(pod("a", web)))
    # An empty protocol is TCP, an empty hostIP every address.
    assert not node_ports.fits(pod("b", {**web, "protocol": "TCP", "host_ip": "10.1.1.1"}), on(pod("a", web)))
    assert node_ports.fits(pod("b", {**web, "protocol": "UDP"}), on(pod("a", web)))
    assert node_ports.fits(pod("b", {**web, "host_ip": "10.1.1.2"}), on(pod("a", {**web, "host_ip": "10.1.1.1"})))
    # No hostPort (a containerPort alone) takes nothing on the node.
    assert node_ports.fits(pod("b", {"container_port": 5000}), on(pod("a", web)))
    assert node_ports.fits(pod("b", web), on(pod("a", {"container_port": 5000})))
    # A sidecar holds its port as the app containers do.
    assert not node_ports.fits(pod("b", web), on(pod("a", sidecar_port=web)))


def test_the_filter_status_says_why():
    web = {"container_port": 5000, "host_port": 5000}
    status = node_ports.NodePorts().filter(pod("b", web), on(pod("a", web)))
    assert not status.ok
    assert node_ports.REASON in status.reasons


def test_hostport_replicas_spread_one_per_node():
    web = {"container_port": 5000, "host_port": 5000}
    nodes = [node("n1"), node("n2"), node("n3")]
    placed: dict[str, list[types_pb2.Pod]] = {n.metadata.name: [] for n in nodes}
    for i in range(3):
        p = pod(f"web-{i}", web)
        result = schedule(p, [NodeInfo.build(n, placed[n.metadata.name]) for n in nodes])
        placed[result.node_name].append(p)
    assert sorted(len(v) for v in placed.values()) == [1, 1, 1]
    fourth = schedule(pod("web-3", web), [NodeInfo.build(n, placed[n.metadata.name]) for n in nodes])
    assert fourth.node_name is None
