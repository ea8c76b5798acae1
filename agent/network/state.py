"""Persisted pod-network state: IP allocations and the hostPorts of each pod.

One JSON file, `<state_dir>/pods.json`, is the truth for which addresses of the
node's pod CIDR are taken and which hostPort rules belong to which pod; the
nftables rules are rendered from it, so they can always be rebuilt exactly.

Crash safety:
- The file is replaced atomically (write a temp file, rename), so a reader
  sees the old or the new version, never half of one. Nothing is fsynced
  (CNI's host-local IPAM does not either): a crashed agent finds the file in
  the page cache, and nothing the file describes (veths, addresses in pod
  namespaces, hostPort rules, sysctls) outlives a reboot, after which every
  record is an orphan. So a file that a power loss left unreadable, last
  written before this boot, is an empty state; one written since is an error.
- Callers hold `StateLock` (an exclusive flock on `<state_dir>/pods.lock`) from
  reading to writing, so two managers (threads or processes) never hand out
  the same address.
- An allocation is recorded *before* the veth is created and dropped only
  *after* it is deleted, so an agent crash in between leaves a record that
  `cleanup_orphans` removes, never a live address that could be given twice.

Cost: every attach and detach reads and rewrites the state, so a process keeps
the state it last wrote (`StateLock.load`/`save`) and reads the file again only
when another writer has been there since: each save leaves a random token in
the lock file, and a load under the lock compares it with its own. The file is
written by the C JSON encoder, compact.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from agent.network.types import NetworkError, PortMapping

log = logging.getLogger(__name__)

STATE_FILE = "pods.json"
LOCK_FILE = "pods.lock"
FORMAT_VERSION = 1
TOKEN_BYTES = 16


@dataclass
class PodRecord:
    ip: str
    veth: str
    ports: list[PortMapping] = field(default_factory=list)


@dataclass
class NetworkState:
    pod_cidr: str
    last_allocated: str = ""
    pods: dict[str, PodRecord] = field(default_factory=dict)
    # Uplinks whose forwarding sysctl Skiff turned on (it was off): fenced in the
    # table while on, turned off again by teardown_node.
    forwarding_enabled_on: list[str] = field(default_factory=list)

    def allocate_pod_ip(self) -> str:
        """Next free host address after the last one handed out (round robin, like
        host-local IPAM), so a just-released address is not reused at once while
        stale connections to it may still be in conntrack."""
        network = ipaddress.IPv4Network(self.pod_cidr)
        gateway = gateway_of(network)
        first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
        taken = {rec.ip for rec in self.pods.values()}
        start = int(ipaddress.IPv4Address(self.last_allocated)) + 1 if self.last_allocated else first
        size = last - first + 1
        for step in range(size):
            candidate = first + (start - first + step) % size
            address = str(ipaddress.IPv4Address(candidate))
            if address != gateway and address not in taken:
                self.last_allocated = address
                return address
        raise NetworkError(f"pod CIDR {self.pod_cidr} is exhausted: {len(taken)} pods hold every address")


def gateway_of(network: ipaddress.IPv4Network) -> str:
    return str(network.network_address + 1)


class StateLock:
    """Exclusive lock over the state file, across threads and processes.

    flock locks belong to the open file description, so every acquisition opens
    the lock file afresh; the thread lock keeps one process's threads from
    piling up on the kernel lock.

    `load` and `save` (under the lock) keep the state this process last saved:
    it is used again while the lock file still holds the token that save wrote.
    A block that loads and does not save, or fails, drops it: what a caller
    changed in the loaded state is only ever kept by saving it.
    """

    _thread_locks: dict[Path, threading.Lock] = {}
    _saved: dict[Path, tuple[bytes, NetworkState]] = {}   # lock file -> (token, state), under its thread lock
    _guard = threading.Lock()

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._path = state_dir / LOCK_FILE
        self._key = self._path.resolve()
        with StateLock._guard:
            self._thread_lock = StateLock._thread_locks.setdefault(self._key, threading.Lock())
        self._fd: int | None = None
        self._keep = True

    def load(self, *, pod_cidr: str) -> NetworkState:
        """The state: this process's last save if no one wrote since, else read from the file."""
        assert self._fd is not None, "load() outside the lock"
        self._keep = False
        saved = StateLock._saved.get(self._key)
        if saved is not None and saved[1].pod_cidr == pod_cidr and os.pread(self._fd, TOKEN_BYTES, 0) == saved[0]:
            return saved[1]
        StateLock._saved.pop(self._key, None)
        return load_state(state_dir=self._state_dir, pod_cidr=pod_cidr)

    def save(self, state: NetworkState) -> None:
        """Write the state (save_state) and remember it with a fresh token in the lock file."""
        assert self._fd is not None, "save() outside the lock"
        StateLock._saved.pop(self._key, None)
        save_state(state_dir=self._state_dir, state=state)
        token = os.urandom(TOKEN_BYTES)
        if os.pwrite(self._fd, token, 0) == TOKEN_BYTES:
            StateLock._saved[self._key] = (token, state)
            self._keep = True

    def __enter__(self) -> "StateLock":
        self._thread_lock.acquire()
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        assert self._fd is not None
        if exc_type is not None or not self._keep:
            StateLock._saved.pop(self._key, None)
        self._keep = True
        os.close(self._fd)  # closing the last fd of the description drops the flock
        self._fd = None
        self._thread_lock.release()


def load_state(*, state_dir: Path, pod_cidr: str) -> NetworkState:
    """Read the state (call under StateLock); a missing file is an empty state."""
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return NetworkState(pod_cidr=pod_cidr)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and _written_before_boot(path):
            log.warning("pod network state %s, written before this boot, is unreadable (%s): starting empty "
                        "(nothing it described outlives a reboot)", path, exc)
            return NetworkState(pod_cidr=pod_cidr)
        raise NetworkError(f"cannot read pod network state {path}: {exc}") from exc
    if raw.get("version") != FORMAT_VERSION:
        raise NetworkError(f"pod network state {path} has version {raw.get('version')!r}, expected {FORMAT_VERSION}")
    pods = {
        pod_id: PodRecord(ip=rec["ip"], veth=rec["veth"],
                          ports=[PortMapping(**p) for p in rec.get("ports", [])])
        for pod_id, rec in raw.get("pods", {}).items()
    }
    enabled_on = list(raw.get("forwardingEnabledOn", []))
    if raw.get("podCIDR") != pod_cidr:
        if pods:
            raise NetworkError(
                f"pod network state {path} holds {len(pods)} allocations from pod CIDR {raw.get('podCIDR')}, "
                f"but this node's pod CIDR is {pod_cidr}; remove those pods first")
        return NetworkState(pod_cidr=pod_cidr, forwarding_enabled_on=enabled_on)
    return NetworkState(pod_cidr=pod_cidr, last_allocated=raw.get("lastAllocated", ""), pods=pods,
                        forwarding_enabled_on=enabled_on)


def _written_before_boot(path: Path) -> bool:
    try:
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return path.stat().st_mtime < boot
    except (OSError, StopIteration, ValueError):
        return False


def save_state(*, state_dir: Path, state: NetworkState) -> None:
    """Replace the state file atomically (call under StateLock)."""
    path = state_dir / STATE_FILE
    doc = {
        "version": FORMAT_VERSION,
        "podCIDR": state.pod_cidr,
        "lastAllocated": state.last_allocated,
        "forwardingEnabledOn": sorted(state.forwarding_enabled_on),
        "pods": {
            pod_id: {"ip": rec.ip, "veth": rec.veth, "ports": [p.__dict__ for p in rec.ports]}
            for pod_id, rec in sorted(state.pods.items())
        },
    }
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise NetworkError(f"cannot write pod network state {path}: {exc}") from exc


def iter_host_ips(mapping: PortMapping, *, node_ip: str) -> Iterator[str]:
    """The host addresses a mapping publishes on ("" = node IP and loopback)."""
    if mapping.host_ip:
        yield mapping.host_ip
        return
    yield node_ip
    if node_ip != "127.0.0.1":
        yield "127.0.0.1"
