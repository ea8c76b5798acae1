"""Millicores → cgroup values, against the kubelet's formulas worked by hand."""
from __future__ import annotations

import pytest

from agent.runtime.linux.cgroups.convert import cpu_quota, cpu_shares, cpu_weight


@pytest.mark.parametrize("millis, shares", [(0, 2), (1, 2), (100, 102), (250, 256), (1000, 1024),
                                            (2500, 2560), (10_000_000, 262144)])
def test_cpu_shares(millis, shares):
    assert cpu_shares(millis=millis) == shares


@pytest.mark.parametrize("shares, weight", [(2, 1), (102, 4), (1024, 39), (262144, 10000)])
def test_cpu_weight_from_shares(shares, weight):
    assert cpu_weight(shares=shares) == weight


@pytest.mark.parametrize("millis, quota", [(1, 1000), (5, 1000), (10, 1000), (100, 10000), (1500, 150000)])
def test_cpu_quota(millis, quota):
    assert cpu_quota(millis=millis) == quota


def test_nonsense_is_refused():
    with pytest.raises(ValueError):
        cpu_shares(millis=-1)
    with pytest.raises(ValueError):
        cpu_quota(millis=0)
