"""Container probes (liveness, readiness, startup) for the pod workers:
`ProbeManager` runs them, `ProbeState` is their threshold logic, `checks`
the handlers (exec, and httpGet/tcpSocket/grpc from the node into the pod's
network namespace, on the agent's event loop)."""
from agent.prober.manager import ProbeManager, Target
from agent.prober.state import LIVENESS, READINESS, STARTUP, ProbeState

__all__ = ["LIVENESS", "READINESS", "STARTUP", "ProbeManager", "ProbeState", "Target"]
