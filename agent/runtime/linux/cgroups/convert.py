"""Kubernetes' conversions from CPU millicores to cgroup values.

Kept in one place so both drivers (and the tests) agree with the kubelet:
pkg/kubelet/cm/helpers_linux.go (MilliCPUToShares, MilliCPUToQuota) and
cgroup_manager_linux.go (CpuSharesToCpuWeight).
"""
from __future__ import annotations

MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
DEFAULT_SHARES = 1024          # the kernel's default for a new v1 cgroup
DEFAULT_WEIGHT = 100           # the kernel's default for a new v2 cgroup
CFS_PERIOD_US = 100_000        # Kubernetes' 100 ms period
MIN_QUOTA_US = 1_000           # the kernel refuses quotas below 1 ms


def cpu_shares(*, millis: int) -> int:
    """Request in millicores → cpu.shares; 0 (BestEffort) gets the minimum, 2."""
    if millis < 0:
        raise ValueError(f"cpu request {millis}m is negative")
    shares = millis * SHARES_PER_CPU // 1000
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def cpu_weight(*, shares: int) -> int:
    """cpu.shares [2, 262144] → cpu.weight [1, 10000], linearly, as the kubelet does."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def cpu_quota(*, millis: int, period_us: int = CFS_PERIOD_US) -> int:
    """Limit in millicores → CFS quota in µs per period; at least 1 ms."""
    if millis <= 0:
        raise ValueError(f"cpu limit {millis}m must be positive")
    return max(MIN_QUOTA_US, millis * period_us // 1000)
