"""Container start latency: Skiff's LinuxRuntime against runc, in one run.

    python bench/container_start.py [-n 50] [--warmup 5]

Each sample is create → start → wait → delete of `/bin/true` in a busybox
container, timed from the caller's side:

  skiff/container   LinuxRuntime as the agent uses it (asyncio, through the
                    zygote): new pid, mount and cgroup namespaces, a cgroup
                    with memory and CPU limits, an overlay rootfs on a fresh
                    upper dir, pivot_root, /proc /dev /sys, masked and
                    read-only paths, rlimits, capabilities, no_new_privs,
                    seccomp, a PID-1 init that records the exit status; joins
                    the pod's (already existing) net/ipc/uts namespaces.
  skiff/pod         the same plus create_sandbox/remove_sandbox per sample
                    (new net, ipc, uts namespaces pinned, pod cgroup) — what
                    a one-container pod costs, comparable to `runc run`,
                    which makes all namespaces per container.
  runc              `runc run` on an OCI bundle from `runc spec` (busybox
                    rootfs, terminal=false, args ["/bin/true"]); runc's own
                    state root and cgroup are removed after each run.

Prints the medians and the ratios to runc. Needs root; leaves nothing behind.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.runtime.interface import ContainerConfig, Resources, SandboxConfig  # noqa: E402
from agent.runtime.linux import LinuxRuntime  # noqa: E402

BUSYBOX = "/usr/bin/busybox"


def make_busybox_rootfs(root: Path) -> Path:
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "true", "echo", "ls", "cat"):
        os.symlink("busybox", root / "bin" / applet)
    return root


async def bench_skiff(rt: LinuxRuntime, layer: Path, *, n: int, warmup: int, per_pod: bool) -> list[float]:
    samples = []
    shared = SandboxConfig(pod_id=f"bench-{secrets.token_hex(4)}", namespace="default", name="bench",
                           hostname="bench")
    if not per_pod:
        await rt.create_sandbox(shared)
    try:
        for i in range(warmup + n):
            sb = SandboxConfig(pod_id=f"bench-{secrets.token_hex(4)}", namespace="default", name="bench",
                               hostname="bench") if per_pod else shared
            cfg = ContainerConfig(id=f"bench-{i}-{secrets.token_hex(3)}", pod_id=sb.pod_id, name="true",
                                  image="busybox", image_id="bench", lower_dirs=(layer,), args=("/bin/true",),
                                  resources=Resources(memory_limit_bytes=64 * 2**20, cpu_limit_millis=1000))
            t0 = time.perf_counter()
            if per_pod:
                await rt.create_sandbox(sb)
            await rt.start(cfg)
            st = await rt.wait(cfg.id)
            await rt.remove(cfg.id)
            if per_pod:
                await rt.remove_sandbox(sb.pod_id)
            dt = time.perf_counter() - t0
            if st.exit_code != 0:
                raise SystemExit(f"skiff: /bin/true exited {st.exit_code}: {st}")
            if i >= warmup:
                samples.append(dt)
    finally:
        if not per_pod:
            await rt.remove_sandbox(shared.pod_id)
    return samples


def bench_runc(bundle_parent: Path, state: Path, layer: Path, *, n: int, warmup: int) -> list[float]:
    bundle = bundle_parent / "bundle"
    bundle.mkdir()
    shutil.copytree(layer, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    state_root = state / "runc"
    samples = []
    for i in range(warmup + n):
        cid = f"skiff-bench-runc-{i}-{secrets.token_hex(3)}"
        t0 = time.perf_counter()
        subprocess.run(["runc", "--root", str(state_root), "run", "--bundle", str(bundle), cid],
                       check=True, stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        subprocess.run(["runc", "--root", str(state_root), "delete", "-f", cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i >= warmup:
            samples.append(dt)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-runc", action="store_true", help="skip runc (not installed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    parent = f"skiff-bench-{secrets.token_hex(4)}"
    # Volatile state lives on tmpfs, as /run does on a normal host (here /run
    # is on the root ext4, where each unlink can wait for a journal commit
    # of whatever else runs). Both runtimes get it: our run dir, runc's root.
    state = tmp / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=700", "skiff-bench", str(state)], check=True)
    rt = None
    try:
        rt = LinuxRuntime(run_dir=state / "skiff", cgroup_parent=parent)
        layer = make_busybox_rootfs(tmp / "layer")
        ctr = asyncio.run(bench_skiff(rt, layer, n=args.n, warmup=args.warmup, per_pod=False))
        pod = asyncio.run(bench_skiff(rt, layer, n=args.n, warmup=args.warmup, per_pod=True))
        runc = None if args.no_runc else bench_runc(tmp, state, layer, n=args.n, warmup=args.warmup)
    finally:
        if rt is not None:
            asyncio.run(rt.cleanup_orphans(set()))
            rt.close()
        # rt.close() has waited for the zygote to end (nothing of ours runs):
        # the tmpfs must come off now, or the run has left something behind.
        subprocess.run(["umount", str(state)], check=True)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            d = hierarchy / parent
            if d.is_dir():
                d.rmdir()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(s) * 1000 for name, s in
           (("skiff/container", ctr), ("skiff/pod", pod), ("runc", runc)) if s}
    print(f"container start (create → start → wait → delete of /bin/true), N={args.n}, "
          f"median after {args.warmup} warm-up runs")
    for name, ms in med.items():
        line = f"  {name:16s} {ms:7.2f} ms"
        if "runc" in med and name != "runc":
            line += f"   ratio to runc {ms / med['runc']:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
