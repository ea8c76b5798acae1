"""Container and node metrics under cAdvisor's and node_exporter's names,
served at the agent's /metrics/cadvisor (kubelet's path).

Grafana dashboards and alerting mixins written for Kubernetes read
`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
`container_network_receive_bytes_total`, ... from kubelet's embedded cAdvisor
and join them on `namespace`, `pod`, `container` (and `image!=""` to leave
out the pod-level series). This module renders the same families with the
same labels (plus `node`) and the same conventions:

- one series per running container, `container` and `image` set;
- the pod's network on a series with `container=""` and `image=""` (the
  network namespace is the pod's, as cAdvisor reports it on the sandbox),
  one per interface; a hostNetwork pod has none (its traffic is the node's);
- the node itself as cAdvisor's root container `id="/"` (CPU and memory),
  and, for a node without node_exporter, node_exporter's `node_cpu_seconds_total`,
  `node_memory_*_bytes`, `node_filesystem_*_bytes` (the filesystems of / and
  the agent's data dir) and `node_load*`, plus cAdvisor's `machine_*`.

The agent's stats loop (agent/app.py, every STATS_PERIOD_SECONDS) takes a
`Snapshot` (`collect`): one `runtime.stats()` per running container (the
cgroup's files) and /proc/PID/net/dev of one process per pod. A scrape
renders the last snapshot, replaced in one assignment: it takes no lock and
calls nothing on the event loop. Node-level numbers are read from /proc at
scrape time (a few small files).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.procfs import meminfo, memory_available
from agent.runtime.interface import ContainerStats, State

CONTAINER_LABELS = ["id", "name", "namespace", "pod", "container", "image", "node"]
NETWORK_LABELS = ["id", "name", "namespace", "pod", "container", "image", "interface", "node"]
_NET_FIELDS = ("receive_bytes", "receive_packets", "receive_errors", "receive_packets_dropped",
               "transmit_bytes", "transmit_packets", "transmit_errors", "transmit_packets_dropped")


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    pod_uid: str
    container: str
    image: str
    container_id: str
    started_at: float          # unix seconds; 0 unknown
    stats: ContainerStats


@dataclass(frozen=True)
class PodNetwork:
    namespace: str
    pod: str
    pod_uid: str
    interfaces: dict[str, tuple[int, ...]]   # name -> the 8 counters of _NET_FIELDS


@dataclass(frozen=True)
class Snapshot:
    containers: list[ContainerSample] = field(default_factory=list)
    networks: list[PodNetwork] = field(default_factory=list)
    taken_at: float = 0.0


def read_net_dev(pid: int) -> dict[str, tuple[int, ...]] | None:
    """/proc/PID/net/dev of the process's network namespace, loopback left
    out; None if the process is gone or shares the agent's (the host's)
    network namespace."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return None
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None
    out = {}
    for line in lines:
        name, _, data = line.partition(":")
        name = name.strip()
        values = [int(v) for v in data.split()]
        if name == "lo" or len(values) < 16:
            continue
        # receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
        out[name] = (values[0], values[1], values[2], values[3], values[8], values[9], values[10], values[11])
    return out


async def collect(*, records: Iterable, runtime) -> Snapshot:
    """One pass over the pod workers' records: stats of each running container."""
    containers: list[ContainerSample] = []
    networks: list[PodNetwork] = []
    for rec in list(records):
        pid_for_network = None
        for name, cr in [*rec.init_containers.items(), *rec.containers.items()]:
            current = cr.current
            if current is None or current.state is not State.RUNNING:
                continue
            try:
                stats = await runtime.stats(current.id)
            except Exception:  # noqa: BLE001 - it may have exited since
                continue
            started = current.started_at.timestamp() if current.started_at is not None else 0.0
            containers.append(ContainerSample(namespace=rec.namespace, pod=rec.name, pod_uid=rec.uid,
                                              container=name, image=current.image, container_id=current.id,
                                              started_at=started, stats=stats))
            if pid_for_network is None and current.pid:
                pid_for_network = current.pid
        if pid_for_network is not None:
            interfaces = read_net_dev(pid_for_network)
            if interfaces:
                networks.append(PodNetwork(namespace=rec.namespace, pod=rec.name, pod_uid=rec.uid,
                                           interfaces=interfaces))
    return Snapshot(containers=containers, networks=networks, taken_at=time.time())


# ---------------------------------------------------------------- node (/proc)

def _proc_stat_cpus() -> dict[str, list[float]]:
    """Per CPU (cpu0, cpu1, ...; not the total line): seconds per mode."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            out[name[3:]] = [int(v) / ticks for v in values]
    return out


_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _mount_of(path: str) -> tuple[str, str, str]:
    """(device, fstype, mountpoint) of the filesystem holding `path`."""
    best = ("", "", "/")
    try:
        real = os.path.realpath(path)
        for line in Path("/proc/self/mounts").read_text().splitlines():
            device, mountpoint, fstype, *_ = line.split()
            mountpoint = mountpoint.replace("\\040", " ")
            if (real == mountpoint or real.startswith(mountpoint.rstrip("/") + "/")) and \
                    len(mountpoint) >= len(best[2]):
                best = (device, fstype, mountpoint)
    except OSError:
        pass
    return best


# ---------------------------------------------------------------- the collector

class CadvisorCollector:
    """Renders the last snapshot (see the module docstring)."""

    def __init__(self, *, node_name: str, cgroup_parent: str = "skiff") -> None:
        self.node_name = node_name
        self.cgroup_parent = cgroup_parent
        self.snapshot = Snapshot()
        self.filesystems: tuple[str, ...] = ("/",)

    def update(self, snapshot: Snapshot, *, filesystems: Iterable[str] = ()) -> None:
        self.snapshot = snapshot   # one assignment: a scrape sees the old one or the new one
        self.filesystems = tuple(dict.fromkeys(("/", *filesystems)))

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._containers(self.snapshot)
        yield from self._network(self.snapshot)
        yield from self._node()

    def _ids(self, s: ContainerSample) -> list[str]:
        return [f"/{self.cgroup_parent}/pod-{s.pod_uid}/{s.container_id}", s.container_id, s.namespace, s.pod,
                s.container, s.image, self.node_name]

    def _containers(self, snap: Snapshot) -> Iterator[Metric]:
        def counter(name, text):
            return CounterMetricFamily(name, text, labels=CONTAINER_LABELS)

        def gauge(name, text):
            return GaugeMetricFamily(name, text, labels=CONTAINER_LABELS)
        cpu = counter("container_cpu_usage_seconds", "Cumulative cpu time consumed in seconds.")
        periods = counter("container_cpu_cfs_periods", "Number of elapsed enforcement period intervals.")
        throttled = counter("container_cpu_cfs_throttled_periods", "Number of throttled period intervals.")
        throttled_s = counter("container_cpu_cfs_throttled_seconds", "Total time duration the container has "
                              "been throttled.")
        working_set = gauge("container_memory_working_set_bytes", "Current working set in bytes.")
        usage = gauge("container_memory_usage_bytes", "Current memory usage in bytes, including all memory "
                      "regardless of when it was accessed.")
        rss = gauge("container_memory_rss", "Size of RSS in bytes.")
        cache = gauge("container_memory_cache", "Number of bytes of page cache memory.")
        failcnt = counter("container_memory_failcnt", "Number of memory usage hits limits.")
        limit = gauge("container_spec_memory_limit_bytes", "Memory limit for the container.")
        ooms = counter("container_oom_events", "Count of out of memory events observed for the container.")
        processes = gauge("container_processes", "Number of processes running inside the container.")
        fs_usage = gauge("container_fs_usage_bytes", "Number of bytes that are consumed by the container on "
                         "this filesystem (its writable layer).")
        fs_inodes = gauge("container_fs_inodes_total", "Number of inodes used by the container's writable layer.")
        start = gauge("container_start_time_seconds", "Start time of the container since unix epoch in seconds.")
        seen = gauge("container_last_seen", "Last time a container was seen by the exporter.")
        for s in snap.containers:
            ids, st = self._ids(s), s.stats
            cpu.add_metric(ids, st.cpu_usage_seconds)
            periods.add_metric(ids, st.cpu_periods)
            throttled.add_metric(ids, st.cpu_throttled_periods)
            throttled_s.add_metric(ids, st.cpu_throttled_seconds)
            working_set.add_metric(ids, st.memory_working_set_bytes)
            usage.add_metric(ids, st.memory_usage_bytes or st.memory_working_set_bytes)
            rss.add_metric(ids, st.memory_rss_bytes)
            cache.add_metric(ids, st.memory_cache_bytes)
            failcnt.add_metric(ids, st.memory_failcnt)
            limit.add_metric(ids, st.memory_limit_bytes)
            ooms.add_metric(ids, st.oom_events)
            processes.add_metric(ids, st.pids)
            fs_usage.add_metric(ids, st.fs_usage_bytes)
            fs_inodes.add_metric(ids, st.fs_inodes)
            if s.started_at:
                start.add_metric(ids, s.started_at)
            seen.add_metric(ids, snap.taken_at)
        # cAdvisor's root container: the whole machine, id="/".
        root = ["/", "/", "", "", "", "", self.node_name]
        try:
            busy = sum(sum(v[i] for i in (0, 1, 2, 5, 6, 7) if i < len(v)) for v in _proc_stat_cpus().values())
            mem = meminfo()
            cpu.add_metric(root, busy)
            working_set.add_metric(root, mem.get("MemTotal", 0) - memory_available(mem))
        except OSError:
            pass
        yield from (cpu, periods, throttled, throttled_s, working_set, usage, rss, cache, failcnt, limit, ooms,
                    processes, fs_usage, fs_inodes, start, seen)

    def _network(self, snap: Snapshot) -> Iterator[Metric]:
        families = [CounterMetricFamily(f"container_network_{f}", f"Cumulative count of {f.replace('_', ' ')}.",
                                        labels=NETWORK_LABELS) for f in _NET_FIELDS]
        for net in snap.networks:
            for interface, values in sorted(net.interfaces.items()):
                ids = [f"/{self.cgroup_parent}/pod-{net.pod_uid}", "", net.namespace, net.pod, "", "", interface,
                       self.node_name]
                for family, value in zip(families, values):
                    family.add_metric(ids, value)
        yield from families

    def _node(self) -> Iterator[Metric]:
        node = ["node"]
        try:
            cpus = _proc_stat_cpus()
            mem = meminfo()
            load = os.getloadavg()
        except OSError:
            return
        cores = GaugeMetricFamily("machine_cpu_cores", "Number of logical CPU cores.", labels=node)
        cores.add_metric([self.node_name], len(cpus) or os.cpu_count() or 1)
        machine_mem = GaugeMetricFamily("machine_memory_bytes", "Amount of memory installed on the machine.",
                                        labels=node)
        machine_mem.add_metric([self.node_name], mem.get("MemTotal", 0))
        cpu_seconds = CounterMetricFamily("node_cpu_seconds", "Seconds the CPUs spent in each mode.",
                                          labels=["cpu", "mode", "node"])
        for cpu_id, values in sorted(cpus.items(), key=lambda kv: int(kv[0])):
            for mode, value in zip(_CPU_MODES, values):
                cpu_seconds.add_metric([cpu_id, mode, self.node_name], value)
        yield from (cores, machine_mem, cpu_seconds)
        for key in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree"):
            if key in mem:
                g = GaugeMetricFamily(f"node_memory_{key}_bytes", f"Memory information field {key}_bytes.",
                                      labels=node)
                g.add_metric([self.node_name], mem[key])
                yield g
        for i, name in enumerate(("node_load1", "node_load5", "node_load15")):
            g = GaugeMetricFamily(name, f"{name[9:]}m load average.", labels=node)
            g.add_metric([self.node_name], load[i])
            yield g
        labels = ["device", "fstype", "mountpoint", "node"]
        size = GaugeMetricFamily("node_filesystem_size_bytes", "Filesystem size in bytes.", labels=labels)
        free = GaugeMetricFamily("node_filesystem_free_bytes", "Filesystem free space in bytes.", labels=labels)
        avail = GaugeMetricFamily("node_filesystem_avail_bytes", "Filesystem space available to non-root users "
                                  "in bytes.", labels=labels)
        files = GaugeMetricFamily("node_filesystem_files", "Filesystem total file nodes.", labels=labels)
        files_free = GaugeMetricFamily("node_filesystem_files_free", "Filesystem total free file nodes.",
                                       labels=labels)
        seen: set[str] = set()
        for path in self.filesystems:
            device, fstype, mountpoint = _mount_of(path)
            if mountpoint in seen:
                continue
            seen.add(mountpoint)
            try:
                st = os.statvfs(mountpoint)
            except OSError:
                continue
            ids = [device, fstype, mountpoint, self.node_name]
            size.add_metric(ids, st.f_blocks * st.f_frsize)
            free.add_metric(ids, st.f_bfree * st.f_frsize)
            avail.add_metric(ids, st.f_bavail * st.f_frsize)
            files.add_metric(ids, st.f_files)
            files_free.add_metric(ids, st.f_ffree)
        yield from (size, free, avail, files, files_free)


class Cadvisor:
    """The collector on a registry of its own, rendered for /metrics/cadvisor."""

    def __init__(self, *, node_name: str, cgroup_parent: str = "skiff") -> None:
        self.collector = CadvisorCollector(node_name=node_name, cgroup_parent=cgroup_parent)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def render(self) -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)
