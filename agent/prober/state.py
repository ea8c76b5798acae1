"""A probe's result as kubelet publishes it: thresholds over consecutive outcomes.

Pure: `ProbeState.observe(ok)` takes one outcome and says whether the
published result changed. kubelet's worker (pkg/kubelet/prober/worker.go)
keeps the last outcome and a run count; the published result flips only once
`successThreshold` successes or `failureThreshold` failures come in a row.
Initial results are kubelet's: readiness starts failed (a container is not
ready until a probe says so), liveness successful (alive until proven
otherwise), startup unknown (None: not started, and not failed either until
failureThreshold failures say so).
"""
from __future__ import annotations

from dataclasses import dataclass

LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
INITIAL: dict[str, bool | None] = {LIVENESS: True, READINESS: False, STARTUP: None}


@dataclass
class ProbeState:
    kind: str
    success_threshold: int = 1
    failure_threshold: int = 3
    result: bool | None = False
    _last: bool | None = None
    _run: int = 0

    @classmethod
    def of(cls, kind: str, *, success_threshold: int, failure_threshold: int) -> "ProbeState":
        return cls(kind=kind, success_threshold=max(1, success_threshold),
                   failure_threshold=max(1, failure_threshold), result=INITIAL[kind])

    def observe(self, ok: bool) -> bool:
        """One probe outcome; True when the published result changed."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        threshold = self.success_threshold if ok else self.failure_threshold
        if self._run < threshold or ok == self.result:
            return False
        self.result = ok
        return True
