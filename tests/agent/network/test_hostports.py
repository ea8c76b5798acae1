"""Finding a host port that is taken, with real sockets; and the port-mapping vocabulary."""
from __future__ import annotations

import socket

import pytest

from agent.network.hostports import host_port_holder
from agent.network.types import PortMapping, validate_port_mapping, veth_name

@pytest.fixture
def sockets():
    opened: list[socket.socket] = []

    def open_socket(*, family=socket.AF_INET, kind=socket.SOCK_STREAM, address=("127.0.0.1", 0),
                    listen=True, v6only=False) -> int:
        s = socket.socket(family, kind)
        opened.append(s)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        s.bind(address)
        if listen and kind == socket.SOCK_STREAM:
            s.listen()
        return s.getsockname()[1]

    try:
        yield open_socket
    finally:
        for s in opened:
            s.close()


def test_a_listener_on_the_same_address_holds_the_port(sockets):
    port = sockets()
    holder = host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1")
    assert holder is not None and f"127.0.0.1:{port}" in holder


def test_a_wildcard_listener_holds_the_port_on_every_address(sockets):
    port = sockets(address=("0.0.0.0", 0))
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is not None
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.2") is not None


def test_a_dual_stack_ipv6_wildcard_listener_holds_the_port(sockets):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    port = sockets(family=socket.AF_INET6, address=("::", 0))
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is not None


def test_a_listener_on_another_address_does_not(sockets):
    port = sockets(address=("127.0.0.2", 0))
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is None
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.2") is not None


def test_tcp_and_udp_are_separate(sockets):
    port = sockets(kind=socket.SOCK_DGRAM, listen=False)
    assert host_port_holder(protocol="UDP", port=port, host_ip="127.0.0.1") is not None
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is None


def test_a_closed_listener_frees_the_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is not None
    assert host_port_holder(protocol="TCP", port=port, host_ip="127.0.0.1") is None


def test_a_host_ip_that_is_not_local_can_be_probed():
    # 198.51.100.0/24 is TEST-NET-2; IP_FREEBIND lets the probe bind it without sending anything.
    assert host_port_holder(protocol="TCP", port=5000, host_ip="198.51.100.7") is None


def test_port_mapping_validation():
    assert validate_port_mapping(PortMapping(5000, 80, "udp", "0.0.0.0")) == PortMapping(5000, 80, "UDP", "")
    for bad, field in [(PortMapping(0, 80), "host_port"), (PortMapping(80, 70000), "container_port"),
                       (PortMapping(80, 80, "SCTPX"), "protocol"), (PortMapping(80, 80, "TCP", "::1"), "hostIP")]:
        with pytest.raises(ValueError, match=field):
            validate_port_mapping(bad)


def test_veth_names_fit_ifnamsiz_and_carry_skiff():
    names = {veth_name(f"uid-{n}") for n in range(100)}
    assert len(names) == 100
    assert all(n.startswith("skiffv") and len(n) <= 15 for n in names)
