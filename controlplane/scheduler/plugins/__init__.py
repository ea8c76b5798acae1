"""One plugin per module; importing this package registers them all.

DEFAULT_FILTERS and DEFAULT_SCORES are the profile the scheduler runs, in order.
"""
from controlplane.scheduler.plugins import (least_allocated, node_name, node_ports, node_ready,  # noqa: F401
                                            node_resources_fit, node_selector, node_unschedulable,
                                            taint_toleration)

DEFAULT_FILTERS = ("NodeUnschedulable", "NodeReady", "NodeName", "NodeSelector", "TaintToleration", "NodePorts",
                   "NodeResourcesFit")
DEFAULT_SCORES = ("LeastAllocated",)
