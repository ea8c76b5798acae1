"""agent.network.rtnl on the real kernel: what the kernel refuses comes back as NetlinkError."""
from __future__ import annotations

import errno
import os
import secrets
import subprocess

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from agent.network.rtnl import Rtnl


def test_a_missing_link_has_no_index_and_deleting_it_is_a_no_op():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Rtnl() as rtnl:
        assert rtnl.index("lo") == 1
        assert rtnl.index(f"skiffv{secrets.token_hex(4)}") is None
        assert rtnl.delete_link(f"skiffv{secrets.token_hex(4)}") is False


def test_a_refused_request_raises_the_kernels_errno(make_pod_netns):
    ns = make_pod_netns()
    name = f"skiffv{secrets.token_hex(4)}"
    fd = os.open(ns.path, os.O_RDONLY)
    try:
        with Rtnl() as rtnl:
            with pytest.raises(NetlinkError) as no_master:
                rtnl.add_veth(name=name, peer="eth0", peer_netns_fd=fd, master=2**31 - 1)
            assert no_master.value.code in (errno.ENODEV, errno.EINVAL)
            assert rtnl.index(name) is None   # nothing half-made
            lo = rtnl.index("lo")
            rtnl.add_veth(name=name, peer="eth0", peer_netns_fd=fd, master=0)
            try:
                with pytest.raises(NetlinkError) as taken:
                    rtnl.add_veth(name=name, peer="eth0", peer_netns_fd=fd, master=0)
                assert taken.value.code == errno.EEXIST
                assert rtnl.index(name) not in (None, lo)
            finally:
                assert rtnl.delete_link(name) is True
    finally:
        os.close(fd)
    assert name not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
