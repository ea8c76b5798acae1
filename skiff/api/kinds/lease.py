"""Lease (coordination.k8s.io/v1): a holder and a renew time, for leader
election. The generic rules cover it."""
from __future__ import annotations

from proto.skiff.v1 import types_pb2
from skiff.api.kinds.strategy import Kind, Strategy

KIND = Kind("Lease", "coordination.k8s.io/v1", "leases", "lease", types_pb2.Lease, True, ("lease",),
            strategy=Strategy())
