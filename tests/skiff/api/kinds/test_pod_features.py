"""The whole v1 Pod schema: the Kubernetes docs' task manifests parse
unchanged, fields Skiff does not implement are stored and named in warnings,
misspelt fields are refused, and probe / env / volume sources are validated
with Kubernetes' field paths (skiff/api/kinds/pod_features.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from skiff.api import kinds, manifest

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"
S = kinds.kind_named("Pod").strategy


def _doc(text: str):
    (doc,) = manifest.parse_text(text, source="pod.yaml")
    return doc


def _errors(text: str) -> list[str]:
    doc = _doc(text)
    return [f"{e.path}: {e.message}" for e in doc.errors]


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
"""


@pytest.mark.parametrize("path", [
    "pods/probe/exec-liveness.yaml", "pods/probe/http-liveness.yaml", "pods/probe/tcp-liveness-readiness.yaml",
    "pods/inject/envars.yaml", "pods/inject/secret-pod.yaml", "pods/inject/dapi-envars-pod.yaml",
    "pods/inject/dapi-envars-container.yaml", "pods/inject/dapi-volume.yaml", "pods/pod-configmap-volume.yaml",
    "pods/pod-configmap-env-var-valueFrom.yaml", "pods/pod-configmap-envFrom.yaml",
])
def test_docs_task_manifests_parse_unchanged_without_warnings(path):
    (doc,) = manifest.load([str(DOCS / path)])
    assert doc.ok, [str(e) for e in doc.errors]
    assert S.warnings(doc.obj) == []


def test_probe_fields_and_defaults():
    (doc,) = manifest.load([str(DOCS / "pods/probe/http-liveness.yaml")])
    probe = S.defaults(doc.obj).spec.containers[0].liveness_probe
    assert (probe.http_get.path, probe.http_get.port, probe.http_get.scheme) == ("/healthz", "8080", "HTTP")
    assert probe.http_get.http_headers[0].name == "Custom-Header"
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds,
            probe.success_threshold, probe.failure_threshold) == (3, 3, 1, 1, 3)


KITCHEN_SINK = POD + """\
    resizePolicy:
    - resourceName: cpu
      restartPolicy: NotRequired
    terminationMessagePolicy: FallbackToLogsOnError
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "sleep 1"]}
    securityContext:
      seLinuxOptions: {level: "s0:c123,c456"}
    volumeMounts:
    - {name: data, mountPath: /data, mountPropagation: HostToContainer}
  dnsPolicy: ClusterFirst
  serviceAccountName: default
  enableServiceLinks: false
  tolerations:
  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: kubernetes.io/os, operator: In, values: [linux]}
  priorityClassName: high
  os: {name: linux}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
"""


def test_every_kubernetes_field_parses_and_the_unimplemented_ones_are_warned_about():
    doc = _doc(KITCHEN_SINK)
    assert doc.ok, [str(e) for e in doc.errors]
    assert S.warnings(S.defaults(doc.obj)) == [
        f"{path} is not implemented by Skiff and is ignored" for path in (
            "spec.containers[0].volumeMounts[0].mountPropagation",
            "spec.containers[0].securityContext.seLinuxOptions",
            "spec.containers[0].resizePolicy",
            "spec.volumes[0].persistentVolumeClaim",
        )]   # affinity and priorityClassName are the scheduler's (controlplane/scheduler/)


def test_a_misspelt_field_is_still_refused():
    errors = _errors(POD + "    livenesProbe:\n      exec: {command: ['true']}\n")
    assert len(errors) == 1 and "unknown field 'livenesProbe'" in errors[0] and "livenessProbe" in errors[0]


@pytest.mark.parametrize("extra, path, words", [
    ("    livenessProbe: {periodSeconds: 5}\n", "spec.containers[0].livenessProbe", "must specify a handler"),
    ("    livenessProbe:\n      exec: {command: ['true']}\n      tcpSocket: {port: 80}\n",
     "spec.containers[0].livenessProbe.tcpSocket", "more than 1 handler"),
    ("    readinessProbe:\n      exec: {command: ['true']}\n      periodSeconds: -1\n",
     "spec.containers[0].readinessProbe.periodSeconds", "greater than or equal to 0"),
    ("    livenessProbe:\n      exec: {command: ['true']}\n      successThreshold: 2\n",
     "spec.containers[0].livenessProbe.successThreshold", "must be 1"),
    ("    startupProbe:\n      httpGet: {port: 70000}\n", "spec.containers[0].startupProbe.httpGet.port",
     "between 1 and 65535"),
    ("    env:\n    - name: A\n      valueFrom:\n        configMapKeyRef: {name: cm}\n",
     "spec.containers[0].env[0].valueFrom.configMapKeyRef.key", "Required"),
    ("    env:\n    - name: A\n      valueFrom:\n        fieldRef: {fieldPath: spec.nope}\n",
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "Unsupported value"),
    ("    envFrom:\n    - prefix: '1X'\n      configMapRef: {name: cm}\n", "spec.containers[0].envFrom[0].prefix",
     "environment variable name"),
    ("  volumes:\n  - name: v\n    configMap: {name: cm, defaultMode: 1000}\n",
     "spec.volumes[0].configMap.defaultMode", "0777"),
    ("  volumes:\n  - name: v\n    secret:\n      secretName: s\n      items: [{key: k, path: ../x}]\n",
     "spec.volumes[0].secret.items[0].path", "'..'"),
    ("  volumes:\n  - name: v\n    configMap: {name: cm}\n    secret: {secretName: s}\n",
     "spec.volumes[0]", "more than 1 volume type"),
])
def test_bad_probe_env_and_volume_sources_are_refused_with_the_field_path(extra, path, words):
    text = POD + extra if not extra.startswith("  volumes") else POD + extra
    errors = _errors(text)
    assert any(e.startswith(f"{path}: ") and words in e for e in errors), errors


def test_describe_shows_probes_and_env_references_as_kubectl():
    from datetime import datetime, timezone
    from skiff.api.kinds.strategy import DescribeContext
    (doc,) = manifest.load([str(DOCS / "pods/probe/http-liveness.yaml")])
    text = S.describe(S.defaults(doc.obj), DescribeContext(events=[], now=datetime.now(timezone.utc)))
    assert "    Liveness:        http-get http://:8080/healthz delay=3s timeout=1s period=3s #success=1 " \
           "#failure=3" in text.splitlines()
    (doc,) = manifest.load([str(DOCS / "pods/pod-configmap-env-var-valueFrom.yaml")])
    text = S.describe(S.defaults(doc.obj), DescribeContext(events=[], now=datetime.now(timezone.utc)))
    assert "      SPECIAL_LEVEL_KEY:  <set to the key 'SPECIAL_LEVEL' of config map 'special-config'>  " \
           "Optional: false" in text.splitlines()
