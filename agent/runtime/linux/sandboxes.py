"""Pod sandboxes: what a pod's containers share.

A sandbox is: pinned net, ipc and uts namespaces (run_dir/netns/<pod>,
run_dir/ns/<pod>/{ipc,uts}; made by the zygote, see sandbox_init.py), the
pod's files under run_dir/pods/<pod>/ (hosts, hostname, resolv.conf,
sandbox.json), the pod cgroup <cgroup_parent>/pod-<pod> with its pids limit,
and, with shareProcessNamespace, the pod init holding the pod's pid
namespace. No pause process otherwise.

agent/network later puts a veth and an address into the pinned network
namespace (the runtime stays free of IPAM and nftables).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
from pathlib import Path

from agent.runtime.interface import Resources, Sandbox, SandboxConfig, StartError
from agent.runtime.linux import cgroups, namespaces
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import RunDirs, is_alive, read_json, to_json_dict, write_json
from agent.runtime.linux.trace import mark
from agent.runtime.linux.zygote import Zygote


def _hosts(hostname: str) -> str:
    return ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n")


def _resolv_conf(search: tuple[str, ...]) -> str:
    """The host's resolvers, minus loopback ones (unreachable from the pod's
    own network namespace), plus the pod's search domains."""
    lines = []
    try:
        host = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        host = []
    for line in host:
        parts = line.split()
        if parts[:1] == ["nameserver"] and len(parts) > 1 and parts[1].startswith("127."):
            continue
        if parts[:1] == ["search"] and search:
            continue
        lines.append(line)
    if search:
        lines.append("search " + " ".join(search))
    return "\n".join(lines) + "\n"


def make_cgroup(cg: cgroups.CgroupManager, resources: Resources) -> None:
    """Create a cgroup with its limits (blocking: callers run it in a thread)."""
    cg.create()
    cg.set(resources)


class Sandboxes:
    def __init__(self, *, dirs: RunDirs, zygote: Zygote, cgroup_parent: str,
                 default_pids_limit: int) -> None:
        self.dirs = dirs
        self.zygote = zygote
        self.cgroup_parent = cgroup_parent
        self.default_pids_limit = default_pids_limit

    def _cgroup(self, pod_id: str) -> cgroups.CgroupManager:
        return cgroups.new_manager(parent=self.cgroup_parent, name_path=f"pod-{pod_id}")

    def _sandbox(self, pod_id: str, rec: dict) -> Sandbox:
        return Sandbox(pod_id=pod_id, netns_path=None if rec["config"]["host_network"] else self.dirs.netns(pod_id),
                       state_dir=self.dirs.pod(pod_id))

    async def create(self, config: SandboxConfig) -> Sandbox:
        mark("sandbox: create called")
        pod_id = config.pod_id
        pdir = self.dirs.pod(pod_id)
        rec = read_json(pdir / "sandbox.json")
        if rec is not None:
            return self._sandbox(pod_id, rec)  # idempotent: it exists already
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "hostname").write_text(config.hostname + "\n")
        (pdir / "hosts").write_text(_hosts(config.hostname))
        (pdir / "resolv.conf").write_text(config.resolv_conf or _resolv_conf(config.dns_search))
        pids = config.resources.pids_limit or self.default_pids_limit
        # The pod cgroup is made in a thread while the zygote makes the namespaces.
        cgroup_made = asyncio.ensure_future(asyncio.to_thread(
            make_cgroup, self._cgroup(pod_id), dataclasses.replace(config.resources, pids_limit=pids)))
        mark("sandbox: files made")
        nsdir = self.dirs.ns_dir(pod_id)
        nsdir.mkdir(parents=True, exist_ok=True)
        req = {"op": "sandbox", "hostname": config.hostname,
               "netns": None if config.host_network else str(self.dirs.netns(pod_id)),
               "ipc": str(nsdir / "ipc"), "uts": str(nsdir / "uts"),
               "share_pid": config.share_process_namespace}
        try:
            reply = await self.zygote.request(req, {})
        except BaseException:
            await asyncio.wait([cgroup_made])
            raise
        mark("sandbox: zygote replied")
        try:
            await cgroup_made
        except OSError as e:
            reply.setdefault("error", f"pod cgroup: {e}")
        rec = {"config": to_json_dict(config)}
        if "pod_init_pid" in reply:
            rec["pod_init"] = {"pid": reply["pod_init_pid"], "start_time": reply["pod_init_start_time"]}
        # Written even on failure, so remove() finds what to undo.
        write_json(pdir / "sandbox.json", rec)
        if "error" in reply:
            self.remove(pod_id)
            raise StartError(reply["error"])
        return self._sandbox(pod_id, rec)

    def get(self, pod_id: str) -> Sandbox | None:
        rec = read_json(self.dirs.pod(pod_id) / "sandbox.json")
        return None if rec is None else self._sandbox(pod_id, rec)

    def list(self) -> list[Sandbox]:
        out = []
        for pod_id in self.dirs.pod_ids():
            sb = self.get(pod_id)
            if sb is not None:
                out.append(sb)
        return out

    def known_pod_ids(self) -> set[str]:
        """Every pod with anything left: a pod dir, pinned namespaces."""
        ids = set(self.dirs.pod_ids())
        for sub in ("netns", "ns"):
            try:
                ids.update(os.listdir(self.dirs.run_dir / sub))
            except FileNotFoundError:
                pass
        return ids

    def hostname(self, pod_id: str) -> str:
        rec = read_json(self.dirs.pod(pod_id) / "sandbox.json")
        return rec["config"]["hostname"] if rec else ""

    def namespace_paths(self, pod_id: str) -> dict[str, str | None]:
        """What a container of the pod setns()es into."""
        rec = read_json(self.dirs.pod(pod_id) / "sandbox.json") or {"config": {"host_network": True}}
        nsdir = self.dirs.ns_dir(pod_id)
        paths: dict[str, str | None] = {
            "net": None if rec["config"]["host_network"] else str(self.dirs.netns(pod_id)),
            "ipc": str(nsdir / "ipc"), "uts": str(nsdir / "uts"), "pid": None}
        init = rec.get("pod_init")
        if init:
            if not is_alive(init["pid"], init["start_time"]):
                raise StartError(f"pod {pod_id}: its pid namespace is gone (pod init {init['pid']} exited)")
            paths["pid"] = f"/proc/{init['pid']}/ns/pid"
        return paths

    def remove(self, pod_id: str) -> None:
        """Undo create(); idempotent, tolerates any half-made state."""
        mark("sandbox: remove called")
        rec = read_json(self.dirs.pod(pod_id) / "sandbox.json") or {}
        init = rec.get("pod_init")
        if init and is_alive(init["pid"], init["start_time"]):
            try:
                fd = sc.pidfd_open(init["pid"])
                try:
                    sc.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)
            except ProcessLookupError:
                pass
        # The cgroup first: destroy() kills anything still in it.
        self._cgroup(pod_id).destroy()
        mark("sandbox: cgroup destroyed")
        nsdir = self.dirs.ns_dir(pod_id)
        namespaces.unpin(self.dirs.netns(pod_id))
        for kind in ("ipc", "uts"):
            namespaces.unpin(nsdir / kind)
        shutil.rmtree(nsdir, ignore_errors=True)
        mark("sandbox: unpinned")
        shutil.rmtree(self.dirs.pod(pod_id), ignore_errors=True)
        mark("sandbox: removed")


__all__ = ["Sandboxes", "Resources"]
