"""Object-state metrics under kube-state-metrics' names, from the control
plane's informer caches.

Dashboards and alerts written for Kubernetes join on kube-state-metrics'
families (`kube_pod_status_phase`, `kube_deployment_status_replicas_available`,
`kube_node_status_condition`, ...); this collector renders the same families,
with the same labels and the same value conventions (one series per phase or
condition status, 1 for the current one and 0 for the others), from the
SharedInformerFactory's caches: a scrape reads what the controllers already
hold in memory, never etcd, and takes no lock (the caches are plain dicts
that the event loop replaces entries of; `Informer.list()` copies one in a
single step under the GIL, so the HTTP thread sees a consistent list).

The informers run while this replica leads (architecture.md, decision 4); a
follower's scrape is empty, as a kube-state-metrics replica that is not
sharded in. A kind that is not registered is left out; its families
appear once its kind file exists.

Served at the control plane's /metrics/kube-state-metrics; the http_sd list
`/sd/kube-state-metrics` names it for a `job: kube-state-metrics`.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from skiff.api import kinds
from skiff.api.quantity import parse_quantity

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
STATUSES = ("true", "false", "unknown")


def _registered(name: str) -> bool:
    try:
        kinds.kind_named(name)
        return True
    except kinds.UnknownKind:
        return False


def _resource(name: str, value: str) -> tuple[str, str, float] | None:
    """A resource quantity as kube-state-metrics labels it: (resource, unit, value)."""
    try:
        amount = float(parse_quantity(value))
    except (ValueError, ZeroDivisionError):
        return None
    if name == "cpu":
        return "cpu", "core", amount
    if name in ("memory", "ephemeral-storage") or name.startswith("hugepages-"):
        return name.replace("-", "_"), "byte", amount
    return name.replace("-", "_").replace(".", "_").replace("/", "_"), "integer", amount


def _created(obj: Message) -> float:
    ts = obj.metadata.creation_timestamp
    return ts.seconds + ts.nanos / 1e9


class KubeStateCollector:
    """A prometheus_client collector over `listers`: kind name -> an object
    with `.list()` and `.synced` (an Informer)."""

    def __init__(self, informers: dict[str, object]) -> None:
        self.informers = informers

    @classmethod
    def from_factory(cls, factory) -> "KubeStateCollector":
        return cls({k: factory.informer(k) for k in FAMILIES if _registered(k)})

    def _objects(self, kind: str) -> list[Message] | None:
        informer = self.informers.get(kind)
        if informer is None or not informer.synced:
            return None
        return informer.list()

    def describe(self) -> Iterable[Metric]:
        return []   # families depend on which kinds are registered: collected only

    def collect(self) -> Iterator[Metric]:
        for kind, families in FAMILIES.items():
            objects = self._objects(kind)
            if objects is not None:
                yield from families(objects)


class KubeStateMetrics:
    """The collector on a registry of its own, rendered for /metrics/kube-state-metrics."""

    def __init__(self, factory) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = KubeStateCollector.from_factory(factory)
        self.registry.register(self.collector)

    def render(self) -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


# ---------------------------------------------------------------- pods

def _owner(obj: Message) -> tuple[str, str]:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref.kind, ref.name
    return "<none>", "<none>"


def pod_families(pods: list[Message]) -> Iterator[Metric]:
    base = ["namespace", "pod", "uid"]
    info = GaugeMetricFamily("kube_pod_info", "Information about pod.",
                             labels=base + ["host_ip", "pod_ip", "node", "created_by_kind", "created_by_name",
                                            "priority_class", "host_network"])
    owner = GaugeMetricFamily("kube_pod_owner", "Information about the Pod's owner.",
                              labels=base + ["owner_kind", "owner_name", "owner_is_controller"])
    created = GaugeMetricFamily("kube_pod_created", "Unix creation timestamp.", labels=base)
    start = GaugeMetricFamily("kube_pod_start_time", "Start time in unix timestamp for a pod.", labels=base)
    phase = GaugeMetricFamily("kube_pod_status_phase", "The pods current phase.", labels=base + ["phase"])
    ready = GaugeMetricFamily("kube_pod_status_ready", "Describes whether the pod is ready to serve requests.",
                              labels=base + ["condition"])
    scheduled = GaugeMetricFamily("kube_pod_status_scheduled", "Describes the status of the scheduling process "
                                  "for the pod.", labels=base + ["condition"])
    deletion = GaugeMetricFamily("kube_pod_deletion_timestamp", "Unix deletion timestamp.", labels=base)
    cbase = base + ["container"]
    cinfo = GaugeMetricFamily("kube_pod_container_info", "Information about a container in a pod.",
                              labels=cbase + ["image_spec", "image", "image_id", "container_id"])
    restarts = CounterMetricFamily("kube_pod_container_status_restarts", "The number of container restarts "
                                   "per container.", labels=cbase)
    waiting = GaugeMetricFamily("kube_pod_container_status_waiting", "Describes whether the container is "
                                "currently in waiting state.", labels=cbase)
    waiting_reason = GaugeMetricFamily("kube_pod_container_status_waiting_reason", "Describes the reason the "
                                       "container is currently in waiting state.", labels=cbase + ["reason"])
    running = GaugeMetricFamily("kube_pod_container_status_running", "Describes whether the container is "
                                "currently in running state.", labels=cbase)
    terminated = GaugeMetricFamily("kube_pod_container_status_terminated", "Describes whether the container is "
                                   "currently in terminated state.", labels=cbase)
    terminated_reason = GaugeMetricFamily("kube_pod_container_status_terminated_reason", "Describes the reason "
                                          "the container is currently in terminated state.",
                                          labels=cbase + ["reason"])
    last_reason = GaugeMetricFamily("kube_pod_container_status_last_terminated_reason", "Describes the last "
                                    "reason the container was in terminated state.", labels=cbase + ["reason"])
    cready = GaugeMetricFamily("kube_pod_container_status_ready", "Describes whether the containers readiness "
                               "check succeeded.", labels=cbase)
    requests = GaugeMetricFamily("kube_pod_container_resource_requests", "The number of requested request "
                                 "resource by a container.", labels=cbase + ["node", "resource", "unit"])
    limits = GaugeMetricFamily("kube_pod_container_resource_limits", "The number of requested limit resource "
                               "by a container.", labels=cbase + ["node", "resource", "unit"])
    for pod in pods:
        m, spec, status = pod.metadata, pod.spec, pod.status
        ids = [m.namespace, m.name, m.uid]
        okind, oname = _owner(pod)
        info.add_metric(ids + [status.host_ip, status.pod_ip, spec.node_name, okind, oname,
                               getattr(spec, "priority_class_name", ""),
                               "true" if getattr(spec, "host_network", False) else "false"], 1)
        if not m.owner_references:
            owner.add_metric(ids + ["<none>", "<none>", "<none>"], 1)
        for ref in m.owner_references:
            owner.add_metric(ids + [ref.kind, ref.name, "true" if ref.controller else "false"], 1)
        created.add_metric(ids, _created(pod))
        if status.HasField("start_time"):
            start.add_metric(ids, status.start_time.seconds + status.start_time.nanos / 1e9)
        if m.HasField("deletion_timestamp"):
            deletion.add_metric(ids, m.deletion_timestamp.seconds)
        for p in POD_PHASES:
            phase.add_metric(ids + [p], 1.0 if (status.phase or "Pending") == p else 0.0)
        conditions = {c.type: c.status.lower() for c in status.conditions}
        for family, ctype in ((ready, "Ready"), (scheduled, "PodScheduled")):
            current = conditions.get(ctype)
            if current is not None:
                for s in STATUSES:
                    family.add_metric(ids + [s], 1.0 if current == s else 0.0)
        statuses = {cs.name: cs for cs in status.container_statuses}
        for c in spec.containers:
            cids = ids + [c.name]
            for family, wanted in ((requests, c.resources.requests), (limits, c.resources.limits)):
                for rname, value in sorted(wanted.items()):
                    parsed = _resource(rname, value)
                    if parsed is not None:
                        family.add_metric(cids + [spec.node_name, parsed[0], parsed[1]], parsed[2])
            cs = statuses.get(c.name)
            if cs is None:
                continue
            cinfo.add_metric(cids + [c.image, cs.image, cs.image_id, cs.container_id], 1)
            restarts.add_metric(cids, cs.restart_count)
            cready.add_metric(cids, 1.0 if cs.ready else 0.0)
            state = cs.state
            is_waiting = state.HasField("waiting")
            is_running = state.HasField("running")
            is_terminated = state.HasField("terminated")
            waiting.add_metric(cids, 1.0 if is_waiting else 0.0)
            running.add_metric(cids, 1.0 if is_running else 0.0)
            terminated.add_metric(cids, 1.0 if is_terminated else 0.0)
            if is_waiting and state.waiting.reason:
                waiting_reason.add_metric(cids + [state.waiting.reason], 1)
            if is_terminated and state.terminated.reason:
                terminated_reason.add_metric(cids + [state.terminated.reason], 1)
            if cs.last_state.HasField("terminated") and cs.last_state.terminated.reason:
                last_reason.add_metric(cids + [cs.last_state.terminated.reason], 1)
    yield from (info, owner, created, start, deletion, phase, ready, scheduled, cinfo, restarts, waiting,
                waiting_reason, running, terminated, terminated_reason, last_reason, cready, requests, limits)


# ---------------------------------------------------------------- nodes

def node_families(nodes: list[Message]) -> Iterator[Metric]:
    info = GaugeMetricFamily("kube_node_info", "Information about a cluster node.",
                             labels=["node", "kernel_version", "os_image", "container_runtime_version",
                                     "kubelet_version", "kubeproxy_version", "pod_cidr", "internal_ip"])
    created = GaugeMetricFamily("kube_node_created", "Unix creation timestamp.", labels=["node"])
    unschedulable = GaugeMetricFamily("kube_node_spec_unschedulable", "Whether a node can schedule new pods.",
                                      labels=["node"])
    condition = GaugeMetricFamily("kube_node_status_condition", "The condition of a cluster node.",
                                  labels=["node", "condition", "status"])
    allocatable = GaugeMetricFamily("kube_node_status_allocatable", "The allocatable for different resources "
                                    "of a node that are available for scheduling.",
                                    labels=["node", "resource", "unit"])
    capacity = GaugeMetricFamily("kube_node_status_capacity", "The capacity for different resources of a node.",
                                 labels=["node", "resource", "unit"])
    for node in nodes:
        name, st = node.metadata.name, node.status
        internal = next((a.address for a in st.addresses if a.type == "InternalIP"), "")
        ni = st.node_info
        info.add_metric([name, ni.kernel_version, ni.os_image, ni.container_runtime_version, ni.kubelet_version,
                         "", node.spec.pod_cidr, internal], 1)
        created.add_metric([name], _created(node))
        unschedulable.add_metric([name], 1.0 if node.spec.unschedulable else 0.0)
        for c in st.conditions:
            for s in STATUSES:
                condition.add_metric([name, c.type, s], 1.0 if c.status.lower() == s else 0.0)
        for family, table in ((allocatable, st.allocatable), (capacity, st.capacity)):
            for rname, value in sorted(table.items()):
                parsed = _resource(rname, value)
                if parsed is not None:
                    family.add_metric([name, parsed[0], parsed[1]], parsed[2])
    yield from (info, created, unschedulable, condition, allocatable, capacity)


# ---------------------------------------------------------------- workloads

def _replicas(spec: Message) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def deployment_families(deployments: list[Message]) -> Iterator[Metric]:
    labels = ["namespace", "deployment"]
    out = {name: GaugeMetricFamily(name, text, labels=labels) for name, text in (
        ("kube_deployment_spec_replicas", "Number of desired pods for a deployment."),
        ("kube_deployment_spec_paused", "Whether the deployment is paused and will not be processed by the "
                                        "deployment controller."),
        ("kube_deployment_status_replicas", "The number of replicas per deployment."),
        ("kube_deployment_status_replicas_ready", "The number of ready replicas per deployment."),
        ("kube_deployment_status_replicas_available", "The number of available replicas per deployment."),
        ("kube_deployment_status_replicas_unavailable", "The number of unavailable replicas per deployment."),
        ("kube_deployment_status_replicas_updated", "The number of updated replicas per deployment."),
        ("kube_deployment_status_observed_generation", "The generation observed by the deployment controller."),
        ("kube_deployment_metadata_generation", "Sequence number representing a specific generation of the "
                                                "desired state."),
        ("kube_deployment_created", "Unix creation timestamp."))}
    condition = GaugeMetricFamily("kube_deployment_status_condition", "The current status conditions of a "
                                  "deployment.", labels=labels + ["condition", "status"])
    for d in deployments:
        ids = [d.metadata.namespace, d.metadata.name]
        st = d.status
        for name, value in (
                ("kube_deployment_spec_replicas", _replicas(d.spec)),
                ("kube_deployment_spec_paused", 1.0 if d.spec.paused else 0.0),
                ("kube_deployment_status_replicas", st.replicas),
                ("kube_deployment_status_replicas_ready", st.ready_replicas),
                ("kube_deployment_status_replicas_available", st.available_replicas),
                ("kube_deployment_status_replicas_unavailable", st.unavailable_replicas),
                ("kube_deployment_status_replicas_updated", st.updated_replicas),
                ("kube_deployment_status_observed_generation", st.observed_generation),
                ("kube_deployment_metadata_generation", d.metadata.generation),
                ("kube_deployment_created", _created(d))):
            out[name].add_metric(ids, value)
        for c in st.conditions:
            for s in STATUSES:
                condition.add_metric(ids + [c.type, s], 1.0 if c.status.lower() == s else 0.0)
    yield from out.values()
    yield condition


def replicaset_families(replicasets: list[Message]) -> Iterator[Metric]:
    labels = ["namespace", "replicaset"]
    out = {name: GaugeMetricFamily(name, text, labels=labels) for name, text in (
        ("kube_replicaset_spec_replicas", "Number of desired pods for a ReplicaSet."),
        ("kube_replicaset_status_replicas", "The number of replicas per ReplicaSet."),
        ("kube_replicaset_status_ready_replicas", "The number of ready replicas per ReplicaSet."),
        ("kube_replicaset_status_fully_labeled_replicas", "The number of fully labeled replicas per ReplicaSet."),
        ("kube_replicaset_status_observed_generation", "The generation observed by the ReplicaSet controller."),
        ("kube_replicaset_metadata_generation", "Sequence number representing a specific generation of the "
                                                "desired state."),
        ("kube_replicaset_created", "Unix creation timestamp."))}
    owner = GaugeMetricFamily("kube_replicaset_owner", "Information about the ReplicaSet's owner.",
                              labels=labels + ["owner_kind", "owner_name", "owner_is_controller"])
    for rs in replicasets:
        ids = [rs.metadata.namespace, rs.metadata.name]
        st = rs.status
        for name, value in (
                ("kube_replicaset_spec_replicas", _replicas(rs.spec)),
                ("kube_replicaset_status_replicas", st.replicas),
                ("kube_replicaset_status_ready_replicas", st.ready_replicas),
                ("kube_replicaset_status_fully_labeled_replicas", st.fully_labeled_replicas),
                ("kube_replicaset_status_observed_generation", st.observed_generation),
                ("kube_replicaset_metadata_generation", rs.metadata.generation),
                ("kube_replicaset_created", _created(rs))):
            out[name].add_metric(ids, value)
        if not rs.metadata.owner_references:
            owner.add_metric(ids + ["<none>", "<none>", "<none>"], 1)
        for ref in rs.metadata.owner_references:
            owner.add_metric(ids + [ref.kind, ref.name, "true" if ref.controller else "false"], 1)
    yield from out.values()
    yield owner


def _timestamp(ts: Message) -> float:
    return ts.seconds + ts.nanos / 1e9


def _owner_family(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels + ["owner_kind", "owner_name", "owner_is_controller"])


def _add_owners(family: GaugeMetricFamily, ids: list[str], obj: Message) -> None:
    if not obj.metadata.owner_references:
        family.add_metric(ids + ["<none>", "<none>", "<none>"], 1)
    for ref in obj.metadata.owner_references:
        family.add_metric(ids + [ref.kind, ref.name, "true" if ref.controller else "false"], 1)


def daemonset_families(daemonsets: list[Message]) -> Iterator[Metric]:
    labels = ["namespace", "daemonset"]
    out = {name: GaugeMetricFamily(name, text, labels=labels) for name, text in (
        ("kube_daemonset_status_desired_number_scheduled", "The number of nodes that should be running the "
                                                           "daemon pod."),
        ("kube_daemonset_status_current_number_scheduled", "The number of nodes running at least one daemon pod "
                                                           "and are supposed to."),
        ("kube_daemonset_status_number_misscheduled", "The number of nodes running a daemon pod but are not "
                                                      "supposed to."),
        ("kube_daemonset_status_number_ready", "The number of nodes that should be running the daemon pod and "
                                               "have one or more of the daemon pod running and ready."),
        ("kube_daemonset_status_number_available", "The number of nodes that should be running the daemon pod "
                                                   "and have one or more of the daemon pod running and available"),
        ("kube_daemonset_status_number_unavailable", "The number of nodes that should be running the daemon pod "
                                                     "and have none of the daemon pod running and available"),
        ("kube_daemonset_status_updated_number_scheduled", "The total number of nodes that are running updated "
                                                           "daemon pod"),
        ("kube_daemonset_status_observed_generation", "The most recent generation observed by the daemon set "
                                                      "controller."),
        ("kube_daemonset_metadata_generation", "Sequence number representing a specific generation of the "
                                               "desired state."),
        ("kube_daemonset_created", "Unix creation timestamp."))}
    for ds in daemonsets:
        ids, st = [ds.metadata.namespace, ds.metadata.name], ds.status
        for name, value in (
                ("kube_daemonset_status_desired_number_scheduled", st.desired_number_scheduled),
                ("kube_daemonset_status_current_number_scheduled", st.current_number_scheduled),
                ("kube_daemonset_status_number_misscheduled", st.number_misscheduled),
                ("kube_daemonset_status_number_ready", st.number_ready),
                ("kube_daemonset_status_number_available", st.number_available),
                ("kube_daemonset_status_number_unavailable", st.number_unavailable),
                ("kube_daemonset_status_updated_number_scheduled", st.updated_number_scheduled),
                ("kube_daemonset_status_observed_generation", st.observed_generation),
                ("kube_daemonset_metadata_generation", ds.metadata.generation),
                ("kube_daemonset_created", _created(ds))):
            out[name].add_metric(ids, value)
    yield from out.values()


def job_families(jobs: list[Message]) -> Iterator[Metric]:
    """batch/v1 Job: the families KubeJobFailed, KubeJobNotCompleted and dashboards read."""
    labels = ["namespace", "job_name"]
    gauges = {name: GaugeMetricFamily(name, text, labels=labels) for name, text in (
        ("kube_job_status_failed", "The number of pods which reached Phase Failed."),
        ("kube_job_status_succeeded", "The number of pods which reached Phase Succeeded."),
        ("kube_job_status_active", "The number of actively running pods."),
        ("kube_job_spec_completions", "The desired number of successfully finished pods the job should be run "
                                      "with."),
        ("kube_job_spec_parallelism", "The maximum desired number of pods the job should run at any given time."),
        ("kube_job_created", "Unix creation timestamp."))}
    start = GaugeMetricFamily("kube_job_status_start_time", "StartTime represents time when the job was "
                              "acknowledged by the Job Manager.", labels=labels)
    completion = GaugeMetricFamily("kube_job_status_completion_time", "CompletionTime represents time when the "
                                   "job was completed.", labels=labels)
    failed = GaugeMetricFamily("kube_job_failed", "The job has failed its execution.", labels=labels + ["condition"])
    complete = GaugeMetricFamily("kube_job_complete", "The job has completed its execution.",
                                 labels=labels + ["condition"])
    owner = _owner_family("kube_job_owner", "Information about the Job's owner.", labels)
    for job in jobs:
        ids, st, spec = [job.metadata.namespace, job.metadata.name], job.status, job.spec
        for name, value in (("kube_job_status_failed", st.failed), ("kube_job_status_succeeded", st.succeeded),
                            ("kube_job_status_active", st.active), ("kube_job_created", _created(job))):
            gauges[name].add_metric(ids, value)
        if spec.HasField("completions"):
            gauges["kube_job_spec_completions"].add_metric(ids, spec.completions)
        if spec.HasField("parallelism"):
            gauges["kube_job_spec_parallelism"].add_metric(ids, spec.parallelism)
        if st.HasField("start_time"):
            start.add_metric(ids, _timestamp(st.start_time))
        if st.HasField("completion_time"):
            completion.add_metric(ids, _timestamp(st.completion_time))
        for c in st.conditions:
            family = failed if c.type == "Failed" else complete if c.type == "Complete" else None
            if family is not None:
                for s in STATUSES:
                    family.add_metric(ids + [s], 1.0 if c.status.lower() == s else 0.0)
        _add_owners(owner, ids, job)
    yield from gauges.values()
    yield from (start, completion, failed, complete, owner)


def cronjob_families(cronjobs: list[Message]) -> Iterator[Metric]:
    labels = ["namespace", "cronjob"]
    info = GaugeMetricFamily("kube_cronjob_info", "Info about cronjob.",
                             labels=labels + ["schedule", "concurrency_policy"])
    active = GaugeMetricFamily("kube_cronjob_status_active", "Active holds pointers to currently running jobs.",
                               labels=labels)
    suspend = GaugeMetricFamily("kube_cronjob_spec_suspend", "Suspend flag tells the controller to suspend "
                                "subsequent executions.", labels=labels)
    last = GaugeMetricFamily("kube_cronjob_status_last_schedule_time", "LastScheduleTime keeps information of "
                             "when was the last time the job was successfully scheduled.", labels=labels)
    last_ok = GaugeMetricFamily("kube_cronjob_status_last_successful_time", "LastSuccessfulTime keeps information "
                                "of when was the last time the job was completed successfully.", labels=labels)
    created = GaugeMetricFamily("kube_cronjob_created", "Unix creation timestamp.", labels=labels)
    for cj in cronjobs:
        ids, st, spec = [cj.metadata.namespace, cj.metadata.name], cj.status, cj.spec
        info.add_metric(ids + [spec.schedule, spec.concurrency_policy or "Allow"], 1)
        active.add_metric(ids, len(st.active))
        suspend.add_metric(ids, 1.0 if spec.suspend else 0.0)
        if st.HasField("last_schedule_time"):
            last.add_metric(ids, _timestamp(st.last_schedule_time))
        if st.HasField("last_successful_time"):
            last_ok.add_metric(ids, _timestamp(st.last_successful_time))
        created.add_metric(ids, _created(cj))
    yield from (info, active, suspend, last, last_ok, created)


# The kinds this renders, if registered, and their families; the factory gets one informer for each.
FAMILIES: dict[str, Callable[[list[Message]], Iterator[Metric]]] = {
    "Pod": pod_families, "Node": node_families, "Deployment": deployment_families,
    "ReplicaSet": replicaset_families, "DaemonSet": daemonset_families, "Job": job_families,
    "CronJob": cronjob_families,
}
