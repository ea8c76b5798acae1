"""deploy/vm end to end (issue 12 item 7): `deploy/vm/cluster.sh up --nodes 3` boots three
Debian 12 VMs under qemu (software emulation where KVM is not usable), node1 running etcd,
the control plane and an agent from deploy/systemd, node2 and node3 joining on first boot.
The seed's web server, built on the host (which is not a node) and pushed into the cluster,
runs on the VMs and answers through its NodePort; the guestbook spreads over the three
(written through node1, read through node3); powering one VM off moves its pod to
another; `down` leaves no qemu, tap, bridge, namespace or disk.

Root, qemu and debootstrap from this machine's apt sources (the image is cached in
/var/cache/skiff-vm after the first run). Every packet stays in the network namespace the
script creates (skiff-vmlab-<tag> here): the VMs' bridge has no link to the host's network.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "vm" / "cluster.sh"
EXAMPLE = ROOT / "manifests" / "examples" / "web-server"
GUESTBOOK = ROOT / "manifests" / "examples" / "guestbook"
SUBNET = "10.77.0"


def _progress(line: str) -> None:
    print(line, file=sys.__stderr__, flush=True)   # long steps show up even under capture


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tag = secrets.token_hex(2)
        self.netns = f"skiff-vmlab-{self.tag}"
        self.state = Path("/var/lib/skiff-vm") / self.netns
        self.tmp = tmp
        self.env = dict(os.environ, SKIFF_VM_NETNS=self.netns, SKIFF_VM_STATE=str(self.state))

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        # A session of its own, killed whole on a timeout: the script's children (a `skiff image
        # push` streaming into a VM, say) must not outlive it.
        proc = subprocess.Popen([str(SCRIPT), *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def up(self, nodes: int, timeout: float) -> None:
        proc = subprocess.Popen([str(SCRIPT), "up", "--nodes", str(nodes)], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = []
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            _progress(f"vm: {line.rstrip()}")
            if time.monotonic() > deadline:
                proc.kill()
                break
        assert proc.wait() == 0, "".join(out) + self.consoles()

    def skiff(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("skiff", *args, timeout=timeout)

    def get(self, *args: str):
        got = self.skiff("get", *args, "-o", "json")
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)

    def http(self, url: str) -> str:
        got = self.run("exec", "curl", "-s", "--max-time", "10", "--noproxy", "*", url, timeout=60)
        return got.stdout if got.returncode == 0 else ""

    def consoles(self) -> str:
        return "".join(f"\n--- {p.name} (tail)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
                       for p in sorted(self.state.glob("*.console.log")))

    def qemu_pids(self) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if f"skiff-vm-{self.netns}-".encode() in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
                except OSError:
                    pass
        return found

    def leftovers(self) -> list[str]:
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        return ([f"netns {self.netns}"] if self.netns in netns else []) + \
            [f"qemu pid {p}" for p in self.qemu_pids()] + ([str(self.state)] if self.state.exists() else [])


# In the suite (CI included) since they fit its bound: on a quiet 2-core machine `up --nodes 3`
# takes ~100 s under software emulation and this file ~12 min, plus ~2.5 min for the first image
# (decision 37 has the figures). SKIFF_VM_TESTS=0 leaves them out of a local run.
ENABLED = os.environ.get("SKIFF_VM_TESTS", "1") != "0"


@pytest.fixture
def lab(tmp_path):
    if not ENABLED:
        pytest.skip("deploy/vm tests left out (SKIFF_VM_TESTS=0)")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("qemu-system-x86_64", "debootstrap", "curl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install qemu-system-x86 qemu-utils debootstrap curl)")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        if lab.state.exists():
            keep = tmp_path / "consoles"
            keep.mkdir(exist_ok=True)
            for p in lab.state.glob("*.console.log"):
                shutil.copy(p, keep / p.name)
        down = lab.run("down", timeout=120)
        assert down.returncode == 0, down.stderr


def _web_server_manifests() -> str:
    """The example's Deployment (two replicas, never two on one node, no hostPort: the
    NodePort Service reaches them) and its NodePort Service, unchanged."""
    deployment = yaml.safe_load((EXAMPLE / "deployment.yaml").read_text())
    spec = deployment["spec"]
    spec["replicas"] = 2
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    container["imagePullPolicy"] = "IfNotPresent"      # a node without it fetches it from a peer
    for port in container["ports"]:
        port.pop("hostPort", None)
    container["resources"]["limits"]["memory"] = "64Mi"
    pod["terminationGracePeriodSeconds"] = 2
    pod["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web-server"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    return yaml.safe_dump(deployment) + "---\n" + (EXAMPLE / "service.yaml").read_text()


def test_three_vms_join_run_the_web_server_and_survive_a_power_off(lab):
    from tests.e2e.test_web_server import _cached_base
    started = time.monotonic()
    lab.up(3, timeout=900)
    _progress(f"vm: up took {time.monotonic() - started:.0f}s")
    nodes = {n["metadata"]["name"]: n for n in lab.get("nodes")["items"]}
    assert sorted(nodes) == ["node1", "node2", "node3"]
    for name, node in nodes.items():
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], (name, node["status"]["conditions"])
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == f"{SUBNET}.{10 + int(name[-1])}"

    # Built on the host, which is not a node, then pushed into the cluster.
    store = lab.tmp / "host-store"
    data = ["--data-dir", str(store)]
    skiff = [sys.executable, "-m", "skiff.cli.main"]
    loaded = subprocess.run([*skiff, "image", "load", *data, "-i", str(_cached_base())], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert loaded.returncode == 0, loaded.stderr
    built = subprocess.run([*skiff, "build", *data, "-t", "my-web-server:v1", str(EXAMPLE)], capture_output=True,
                           text=True, timeout=300, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    _progress("vm: pushing my-web-server:v1 into the cluster")
    pushing = time.monotonic()
    # ~170 MB (Debian with python3) through node1's control plane into its agent, both on one
    # emulated CPU: minutes under TCG, and more on a slow host.
    pushed = lab.skiff("image", "push", *data, "my-web-server:v1", timeout=1800)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    _progress(f"vm: push took {time.monotonic() - pushing:.0f}s")
    assert pushed.stdout.startswith("my-web-server:v1: pushed into the cluster, node "), pushed.stdout

    manifests = lab.tmp / "web.yaml"
    manifests.write_text(_web_server_manifests())
    applied = lab.skiff("apply", "-f", str(manifests))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def ready_pods() -> dict[str, str]:
        pods = lab.get("pods", "-l", "app=web-server")["items"]
        return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods
                if p["metadata"].get("deletionTimestamp") is None
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}

    _progress("vm: waiting for the web server's two pods")
    placed = wait_for("two ready web-server pods", lambda: len(ready_pods()) == 2 and ready_pods(),
                      timeout=900, interval=2)
    assert len(set(placed.values())) == 2, placed
    # Under systemd's Delegate=yes the pods' cgroups are the agent unit's (agent/cgroupdelegation.py),
    # as the node's cAdvisor metrics name them.
    some = sorted(placed.values())[0]
    cadvisor = lab.http(f"http://{SUBNET}.{10 + int(some[-1])}:10255/metrics/cadvisor")
    assert 'id="/system.slice/skiff-agent.service/skiff/pod-' in cadvisor, cadvisor[:3000]
    for ip in (f"{SUBNET}.11", f"{SUBNET}.12", f"{SUBNET}.13"):   # any node's NodePort answers
        answer = wait_for(f"http://{ip}:30500/", lambda: lab.http(f"http://{ip}:30500/"), timeout=120, interval=2)
        assert "v1" in answer and "node" in answer, answer

    _guestbook(lab, store, skiff)

    # Pull one worker's plug: its pod goes to the node left free.
    victim = sorted(n for n in placed.values() if n != "node1")[0]
    _progress(f"vm: powering {victim} off")
    off = lab.run("poweroff", victim)
    assert off.returncode == 0, off.stderr

    def moved():
        now = ready_pods()
        return len(now) == 2 and victim not in now.values() and now
    after = wait_for(f"the pod of {victim} running elsewhere", moved, timeout=600, interval=2)
    assert set(after.values()) == {"node1", "node2", "node3"} - {victim}, after
    answer = wait_for("the NodePort after the move", lambda: lab.http(f"http://{SUBNET}.11:30500/"),
                      timeout=60, interval=2)
    assert "v1" in answer

    down = lab.run("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert lab.leftovers() == []


def _guestbook_manifests() -> str:
    """manifests/examples/guestbook as it is, but for the frontend's pull policy: Never says
    "built on this node"; here it was built on the host and pushed into the cluster, and a
    node without it fetches it from the one that has it."""
    docs = []
    for path in sorted(GUESTBOOK.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    container["imagePullPolicy"] = "IfNotPresent"
            docs.append(doc)
    return yaml.safe_dump_all(docs)


def _guestbook(lab: Lab, store: Path, skiff: list[str]) -> None:
    """The guestbook over the three VMs: redis from a Debian image loaded on the host, the
    frontend built there, both pushed; written through node1's NodePort, read through node3's."""
    from tests.e2e.test_guestbook import NODE_PORT, _cached_redis
    data = ["--data-dir", str(store)]
    loaded = subprocess.run([*skiff, "image", "load", *data, "-i", str(_cached_redis())], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert loaded.returncode == 0, loaded.stderr
    built = subprocess.run([*skiff, "build", *data, "-t", "guestbook-frontend", str(GUESTBOOK)],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    for image in ("debian-redis:bookworm", "guestbook-frontend:latest"):
        _progress(f"vm: pushing {image} into the cluster")
        pushing = time.monotonic()
        pushed = lab.skiff("image", "push", *data, image, timeout=1200)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        _progress(f"vm: push took {time.monotonic() - pushing:.0f}s")
    # The frontend's Debian+python base went in with the web server: only its own layer did now.
    assert pushed.stderr.endswith(": Layer already exists\n"), pushed.stderr
    manifests = lab.tmp / "guestbook.yaml"
    manifests.write_text(_guestbook_manifests())
    applied = lab.skiff("apply", "-f", str(manifests))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for deployment in ("redis-leader", "redis-follower", "frontend"):
        _progress(f"vm: waiting for deployment/{deployment}")
        done = lab.skiff("rollout", "status", f"deployment/{deployment}", "--timeout", "900s", timeout=960)
        assert done.returncode == 0, done.stdout + done.stderr + lab.skiff("get", "pods", "-o", "wide").stdout
    pods = lab.get("pods")["items"]
    frontends = sorted(p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"].get("tier") == "frontend")
    assert frontends == ["node1", "node2", "node3"], frontends   # its topology spread: one a VM
    followers = {p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"].get("role") == "follower"}
    assert len(followers) == 2, followers

    value = f"hello-from-{lab.tag}"
    written = wait_for("a write through node1's NodePort", lambda: lab.http(
        f"http://{SUBNET}.11:{NODE_PORT}/?cmd=set&key=messages&value={value}"), timeout=60, interval=2)
    assert json.loads(written) == {"message": "OK"}

    def read_back():
        got = lab.http(f"http://{SUBNET}.13:{NODE_PORT}/?cmd=get&key=messages")
        return got if got and json.loads(got) == {"data": value} else None
    wait_for(f"{value} read back through node3's NodePort", read_back, timeout=120, interval=2)


def test_down_after_a_killed_up_leaves_nothing(lab):
    """`up` killed while the VMs boot: `down` still stops its qemu processes and removes all."""
    proc = subprocess.Popen([str(SCRIPT), "up", "--nodes", "2"], env=lab.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        _progress(f"vm: {line.rstrip()}")
        if "node2: qemu pid" in line:
            break
    proc.kill()
    proc.wait()
    assert len(lab.qemu_pids()) == 2
    down = lab.run("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert lab.leftovers() == []
