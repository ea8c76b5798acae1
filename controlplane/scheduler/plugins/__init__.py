"""One plugin per module; importing this package registers them all.

DEFAULT_FILTERS and DEFAULT_SCORES are the profile the scheduler runs, in
order; score weights are Kubernetes' defaults. NodeAffinity covers
spec.nodeSelector too (as Kubernetes'); NodeSelector stays registered alone.
"""
from controlplane.scheduler.plugins import (balanced_allocation, image_locality, inter_pod_affinity,  # noqa: F401
                                            least_allocated, node_affinity, node_name, node_ports, node_ready,
                                            node_resources_fit, node_selector, node_unschedulable,
                                            pod_topology_spread, taint_toleration)

DEFAULT_FILTERS = ("NodeUnschedulable", "NodeReady", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts",
                   "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity")
DEFAULT_SCORES = (("TaintToleration", 3), ("NodeAffinity", 2), ("PodTopologySpread", 2), ("InterPodAffinity", 2),
                  ("NodeResourcesFit", 1), ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1))
