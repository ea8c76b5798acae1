"""Bad scheduling input in a pod is refused with the field path and Kubernetes' words."""
from __future__ import annotations

import pytest

from skiff.api import manifest

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox}]
"""


def errors(extra: str) -> list[str]:
    (doc,) = manifest.parse_text(POD + extra, source="pod.yaml")
    return [f"{e.path}: {e.message}" for e in doc.errors]


NODE_TERM = """\
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: cores, operator: %s, values: %s}
"""
REQ = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
SPREAD = "  topologySpreadConstraints:\n  - {maxSkew: %s, topologyKey: %s, whenUnsatisfiable: %s}\n"


@pytest.mark.parametrize("extra, expected", [
    (NODE_TERM % ("Bigger", "[a]"), f'{REQ}.matchExpressions[0].operator: Invalid value: "Bigger": '
                                    f"not a valid selector operator"),
    (NODE_TERM % ("Gt", "[four]"), f'{REQ}.matchExpressions[0].values[0]: Invalid value: "four": must be an integer'),
    (NODE_TERM % ("Lt", "['1', '2']"), f"{REQ}.matchExpressions[0].values: Required value: must be specified single "
                                   f"value when `operator` is 'Lt' or 'Gt'"),
    (NODE_TERM % ("In", "[]"), f"{REQ}.matchExpressions[0].values: Required value: must be specified when "
                               f"`operator` is 'In' or 'NotIn'"),
    (NODE_TERM % ("Exists", "[x]"), f"{REQ}.matchExpressions[0].values: Forbidden: may not be specified when "
                                    f"`operator` is 'Exists' or 'DoesNotExist'"),
    ("  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}\n",
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: "
     "must have at least one node selector term"),
    ("  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
     "      - {labelSelector: {matchLabels: {app: web}}, topologyKey: 'zone/a/b'}\n",
     "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Invalid value: "
     "\"zone/a/b\": a qualified name must consist of alphanumeric characters"),
    ("  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
     "      - {labelSelector: {matchLabels: {app: web}}}\n",
     "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: "
     "can not be empty"),
    ("  affinity:\n    podAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n"
     "      - {weight: 0, podAffinityTerm: {topologyKey: zone}}\n",
     "spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: "
     "must be in the range 1-100"),
    (SPREAD % (0, "zone", "DoNotSchedule"), "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: "
                                            "must be greater than zero"),
    (SPREAD % (1, "zone", "Sometimes"), 'spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: '
                                        '"Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"'),
    ("  topologySpreadConstraints:\n  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, "
     "minDomains: 2}\n", "spec.topologySpreadConstraints[0].minDomains: Invalid value: 2: can only use minDomains "
                        "if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"),
    ("  preemptionPolicy: Sometimes\n", 'spec.preemptionPolicy: Unsupported value: "Sometimes": supported values: '
                                        '"PreemptLowerPriority", "Never"'),
])
def test_bad_scheduling_input_is_refused_with_its_path(extra, expected):
    assert any(e.startswith(expected) for e in errors(extra)), errors(extra)


def test_good_scheduling_input_passes_and_is_not_warned_about():
    assert errors(NODE_TERM % ("Gt", "['4']") + SPREAD % (1, "topology.kubernetes.io/zone", "DoNotSchedule")
                  + "  priorityClassName: high\n  preemptionPolicy: Never\n") == []


def test_duplicate_spread_constraints_are_refused():
    twice = SPREAD % (1, "zone", "DoNotSchedule") + "  - {maxSkew: 2, topologyKey: zone, whenUnsatisfiable: " \
                                                    "DoNotSchedule}\n"
    assert 'spec.topologySpreadConstraints[1]: Duplicate value: "{zone, DoNotSchedule}"' in errors(twice)
