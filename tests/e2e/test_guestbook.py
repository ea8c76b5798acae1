"""The classic guestbook on `skiff up --nodes 3` (issue 11's Done-when): a redis
leader and two followers from a Debian image with redis-server, the followers
replicating from the leader by its Service name, and a Python frontend (built
with `skiff build`) of 3 behind a NodePort - written through node 1's IP, read
back through node 3's. Beside it, the Kubernetes docs' run-my-nginx.yaml +
nginx-svc.yaml (a ClusterIP Service, reached by name from a pod) and
nginx-app.yaml (a LoadBalancer Service, reached on a node's IP), with a busybox
httpd standing in for nginx.

The Debian bases take a debootstrap from the machine's apt sources, so each is
made once per machine into a saved archive under /var/cache/skiff-test (as
tests/e2e/test_web_server.py does for the python one). Root and the real
kernel; no packet leaves the machine (the nodes are network namespaces on a
private link, tests/e2e/test_nodes.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_nodes import leftovers
from tests.e2e.test_web_server import BASE_CACHE, _cached_base, _skiff

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "guestbook"
DOCS = ROOT / "tests" / "fixtures" / "kubernetes-docs"
REDIS = "debian-redis:bookworm"
REDIS_CACHE = BASE_CACHE.with_name("debian-redis-bookworm.tar")
NODE_PORT = 30180   # manifests/examples/guestbook/frontend.yaml

# The docs' nginx, standing in: busybox httpd on port 80 answering with its pod's name. As
# PID 1, httpd would ignore SIGTERM (and each deletion wait out the 30 s grace period): the
# shell stays PID 1 and exits on it.
NGINX = ('FROM busybox\nCMD ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; trap \'exit 0\' TERM; '
         'httpd -f -p 80 -h /www & wait"]\n')
DOCS_NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: nginx-app}\n"


def _cached_redis() -> Path:
    """The Debian+redis-server base as an image archive, bootstrapped once per machine."""
    if REDIS_CACHE.exists():
        return REDIS_CACHE
    REDIS_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skiff-test-redis-") as tmp:
        made = _skiff("image", "bootstrap", "debian", "--include", "redis-server", "-t", REDIS, "--data-dir", tmp)
        assert made.returncode == 0, made.stdout + made.stderr
        partial = REDIS_CACHE.with_suffix(".partial")
        saved = _skiff("image", "save", "--data-dir", tmp, "-o", str(partial), REDIS)
        assert saved.returncode == 0, saved.stderr
        partial.rename(REDIS_CACHE)
    return REDIS_CACHE


def _get(url: str) -> tuple[int, dict | str]:
    """GET url straight (never through a proxy); (status, JSON body or the error)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def test_guestbook_writes_on_one_node_and_reads_on_another(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    started = time.monotonic()
    c = private_cluster
    name = f"skiffgb{c.tag[:2]}"
    node_cidr = f"10.216.{int(c.tag[:2], 16)}.0/24"
    cluster_cidr = f"10.{100 + int(c.tag, 16) % 100}.0.0/16"
    with ThreadPoolExecutor(max_workers=4) as pool:
        bases = [pool.submit(_cached_base), pool.submit(_cached_redis)]
        up = subprocess.run(c.up_args("--detach", "--nodes", "3", "--name", name, "--node-cidr", node_cidr),
                            env=c.env(), capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        python_base, redis_base = (f.result() for f in bases)
        data = ["--data-dir", str(c.data_dir)]

        # The images, into the nodes' shared store: the two bases loaded side by side,
        # the frontend built once its base is in, the nginx stand-in from busybox.
        def frontend_image():
            loaded = c.skiff("image", "load", *data, "-i", str(python_base), timeout=600)
            assert loaded.returncode == 0, loaded.stderr
            built = c.skiff("build", *data, "-t", "guestbook-frontend", str(EXAMPLE), timeout=600)
            assert built.returncode == 0, built.stdout + built.stderr

        def nginx_image():
            (tmp_path / "nginx").mkdir()
            (tmp_path / "nginx" / "Dockerfile").write_text(NGINX)
            built = c.skiff("build", *data, "-t", "nginx", str(tmp_path / "nginx"), timeout=600)
            assert built.returncode == 0, built.stdout + built.stderr
            assert c.skiff("image", "tag", *data, "nginx", "nginx:1.14.2").returncode == 0

        loads = [pool.submit(frontend_image), pool.submit(nginx_image),
                 pool.submit(c.skiff, "image", "load", *data, "-i", str(redis_base), timeout=600)]
        assert loads[2].result().returncode == 0, loads[2].result().stderr
        loads[0].result()
        loads[1].result()
    print(f"cluster up and images in after {time.monotonic() - started:.0f}s")

    # The guestbook as its README says, and the docs' nginx manifests.
    applied = c.skiff("apply", "-f", str(EXAMPLE))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert sorted(applied.stdout.splitlines()) == [
        "deployment/frontend created", "deployment/redis-follower created",
        "deployment/redis-leader created", "service/frontend created", "service/redis-follower created",
        "service/redis-leader created"], applied.stdout
    (tmp_path / "ns.yaml").write_text(DOCS_NAMESPACE)
    for args in (("-f", str(DOCS / "service/networking/run-my-nginx.yaml")),
                 ("-f", str(DOCS / "service/networking/nginx-svc.yaml")),
                 ("-f", str(tmp_path / "ns.yaml")),
                 # Its Deployment is also called my-nginx: a namespace of its own.
                 ("-n", "nginx-app", "-f", str(DOCS / "application/nginx-app.yaml"))):
        applied = c.skiff("apply", *args)
        assert applied.returncode == 0 and applied.stderr == "", applied.stdout + applied.stderr

    # Every rollout at once.
    with ThreadPoolExecutor(max_workers=5) as pool:
        rollouts = {(deploy, ns): pool.submit(c.skiff, "rollout", "status", f"deploy/{deploy}", "-n", ns,
                                              "--timeout", "300s", timeout=360)
                    for deploy, ns in (("redis-leader", "default"), ("redis-follower", "default"),
                                       ("frontend", "default"), ("my-nginx", "default"), ("my-nginx", "nginx-app"))}
        for deploy, rollout in rollouts.items():
            done = rollout.result()
            assert done.returncode == 0, (deploy, done.stdout + done.stderr,
                                          c.skiff("get", "pods", "-A", "-o", "wide").stdout)
    print(f"rolled out after {time.monotonic() - started:.0f}s")

    # Spread over the nodes: a frontend on every node, the followers on two different ones.
    nodes = [f"{name}-node-{i}" for i in (1, 2, 3)]
    pods = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"]
    placed: dict[str, list[str]] = {}
    for p in pods:
        placed.setdefault(p["metadata"]["labels"].get("role") or p["metadata"]["labels"].get("tier")
                          or p["metadata"]["labels"].get("run"), []).append(p["spec"]["nodeName"])
    assert sorted(placed["frontend"]) == nodes, placed
    assert len(set(placed["follower"])) == 2 and len(placed["leader"]) == 1, placed
    followers = sorted(p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("role") == "follower")

    listed = {n["metadata"]["name"]: n for n in json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]}
    node_ips = [next(a["address"] for a in listed[n]["status"]["addresses"] if a["type"] == "InternalIP")
                for n in nodes]

    # The followers replicate from the leader they found by its Service name.
    for follower in followers:
        def replicating(follower=follower):
            out = c.skiff("exec", follower, "--", "redis-cli", "info", "replication")
            return out.stdout if "master_link_status:up" in out.stdout else None
        info = wait_for(f"{follower} linked to its leader", replicating, timeout=120)
        assert "role:slave" in info and "master_host:redis-leader" in info, info

    # Written through the NodePort on node 1's IP (the leader), read back on node 3's (a follower).
    value = f"hello-from-{c.tag}"
    status, body = _get(f"http://{node_ips[0]}:{NODE_PORT}/?cmd=set&key=messages&value={value}")
    assert (status, body) == (200, {"message": "OK"})

    def read_back():
        got = _get(f"http://{node_ips[2]}:{NODE_PORT}/?cmd=get&key=messages")
        return got if got == (200, {"data": value}) else None
    wait_for(f"{value} read back through {node_ips[2]}", read_back, timeout=30)
    # Redis replicates asynchronously: once both followers hold the write (a follower may lag it
    # by a moment; clean-clone CI once read None through the other one), every frontend must read it.
    for follower in followers:
        def holds(follower=follower):
            out = c.skiff("exec", follower, "--", "redis-cli", "get", "messages")
            return out.stdout if out.stdout.strip() == value else None
        wait_for(f"{follower} holding {value}", holds, timeout=30)
    # And from every node's IP, whichever frontend and follower answer.
    for ip in node_ips:
        for _ in range(3):
            assert _get(f"http://{ip}:{NODE_PORT}/?cmd=get&key=messages") == (200, {"data": value}), ip
    # The followers are replicas: a write straight to one is refused.
    refused = c.skiff("exec", followers[0], "--", "redis-cli", "set", "messages", "nope")
    assert "READONLY" in refused.stdout + refused.stderr, refused.stdout + refused.stderr

    # The docs' nginx: my-nginx by name (ClusterIP, cluster DNS) from a frontend pod, and
    # my-nginx-svc (LoadBalancer) on every node's IP at port 80.
    frontend = next(p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("tier") == "frontend")
    fetch = "import urllib.request as u; print(u.urlopen('http://my-nginx/', timeout=5).read().decode().strip())"
    got = c.skiff("exec", frontend, "--", "python3", "-c", fetch)
    my_nginx = {p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("run") == "my-nginx"}
    assert got.returncode == 0 and got.stdout.strip() in my_nginx, (got.stdout + got.stderr, my_nginx)
    app_pods = {p["metadata"]["name"] for p in json.loads(
        c.skiff("get", "pods", "-n", "nginx-app", "-o", "json").stdout)["items"]}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def lb_answers(ip):
        try:
            with opener.open(f"http://{ip}/", timeout=10) as reply:
                return reply.read().decode().strip()
        except OSError:
            return None
    for ip in node_ips:
        assert wait_for(f"my-nginx-svc on {ip}:80", lambda ip=ip: lb_answers(ip), timeout=60) in app_pods
    print(f"checked after {time.monotonic() - started:.0f}s")

    # down --purge leaves no namespace, link, route, table or cgroup of the cluster.
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr, cluster_cidr]) == {}
    print(f"done after {time.monotonic() - started:.0f}s")
