"""Reading /proc/net socket tables to find a host port that is taken."""
from __future__ import annotations

import socket

import pytest

from agent.network.hostports import bound_sockets, host_socket_holding
from agent.network.types import PortMapping, validate_port_mapping, veth_name

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _row(local: str, state: str) -> str:
    return f"   0: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 1 1\n"


@pytest.fixture
def proc_net(tmp_path):
    (tmp_path / "tcp").write_text(HEADER + _row("0100007F:1388", "0A")      # 127.0.0.1:5000 LISTEN
                                  + _row("0100007F:1F90", "01")             # 127.0.0.1:8080 ESTABLISHED
                                  + _row("00000000:0016", "0A"))            # 0.0.0.0:22 LISTEN
    (tmp_path / "tcp6").write_text(HEADER + _row("00000000000000000000000000000000:1770", "0A")   # [::]:6000
                                   + _row("0000000000000000FFFF00000100000A:1B58", "0A"))    # ::ffff:10.0.0.1:7000
    (tmp_path / "udp").write_text(HEADER + _row("0100007F:0035", "07"))     # 127.0.0.1:53
    return tmp_path


def test_decodes_listening_sockets(proc_net):
    assert set(bound_sockets(protocol="TCP", proc_net=proc_net)) == {
        ("127.0.0.1", 5000), ("0.0.0.0", 22), ("::", 6000), ("10.0.0.1", 7000)}
    assert list(bound_sockets(protocol="UDP", proc_net=proc_net)) == [("127.0.0.1", 53)]


@pytest.mark.parametrize("port,host_ips,taken", [
    (5000, {"127.0.0.1"}, True),
    (5000, {"10.1.0.1"}, False),        # bound to loopback only: the node IP is free
    (8080, {"127.0.0.1"}, False),       # an established connection does not hold a port
    (22, {"10.1.0.1"}, True),           # wildcard
    (6000, {"10.1.0.1"}, True),         # IPv6 wildcard (dual stack)
    (7000, {"10.0.0.1"}, True),         # IPv4-mapped
    (7001, {"127.0.0.1"}, False),
])
def test_host_socket_holding(proc_net, port, host_ips, taken):
    holder = host_socket_holding(protocol="TCP", port=port, host_ips=host_ips, proc_net=proc_net)
    assert (holder is not None) == taken
    if taken:
        assert str(port) in holder


def test_finds_a_real_listening_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert host_socket_holding(protocol="TCP", port=port, host_ips={"127.0.0.1"}) is not None
    assert host_socket_holding(protocol="TCP", port=port, host_ips={"127.0.0.1"}) is None


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
