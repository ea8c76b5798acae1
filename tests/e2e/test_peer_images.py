"""Images reach every node from the cluster itself (decision 33), on `skiff up --nodes 2
--separate-image-stores`: an image `skiff build` writes into node 1's store runs in a pod
pinned to node 2, whose agent fetches it from node 1's registry over the nodes' private
link (the pod's events say `from node ...-node-1`). `skiff image push` / `image load --cluster`
from a store no node uses put images into a node's store through the API; a bad archive is
refused naming the node. `skiff build --cluster` sends a context from the client to a node,
which builds it (its .dockerignore kept what it lists on the client). down --purge leaves nothing.

Root and the real kernel; no packet leaves the machine (the nodes' link is a private one
in namespaces the test's cluster creates).
"""
from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request

import pytest

from agent.images.store import ImageStore
from tests.e2e.test_nodes import leftovers, wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

DOCKERFILE = """\
FROM busybox
COPY index.html /srv/index.html
CMD ["sh", "-c", "cat /srv/index.html; exec sleep 3600"]
"""


@pytest.mark.parametrize("mode", ["plain", "secure"])
def test_an_image_built_on_node_1_runs_on_node_2(private_cluster, mode):
    """secure: the nodes' registries take only certificates of the cluster CA (node to node TLS)."""
    c = private_cluster
    name = f"skiffim{c.tag[:2]}"
    node_cidr = f"10.213.{1 + int(c.tag[2:4], 16) % 254}.0/24"
    up = c.skiff(*c.up_args("--detach", "--nodes", "2", "--name", name, "--node-cidr", node_cidr,
                            "--separate-image-stores", "--insecure" if mode == "plain" else "--secure")[3:],
                 timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    one, two = f"{name}-node-1", f"{name}-node-2"
    store_one, store_two = c.data_dir / "nodes" / one, c.data_dir / "nodes" / two

    context = c.base / "web"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "index.html").write_text("hello from node 1's build\n")
    built = c.skiff("build", "--data-dir", str(store_one), "-t", "my-web-server:v1", str(context), timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr

    def images(store) -> set[str]:
        listed = c.skiff("image", "ls", "--data-dir", str(store), "--format", "json").stdout.splitlines()
        return {f"{row['Repository']}:{row['Tag']}" for row in map(json.loads, listed)}
    assert "my-web-server:v1" in images(store_one) and not images(store_two)
    # Node 1 reports what its store holds (the scheduler's ImageLocality reads it; peers find it there).
    wait_for("node 1 reports my-web-server:v1", lambda: any(
        "docker.io/library/my-web-server:v1" in image["names"]
        for image in json.loads(c.skiff("get", "node", one, "-o", "json").stdout)["status"].get("images", [])))

    # Node 1's registry on its node IP (the private link): plain HTTP, or TLS with a client certificate.
    address = json.loads(c.skiff("get", "node", one, "-o", "json").stdout)["metadata"]["annotations"][
        "skiff.io/image-registry"]
    assert address.startswith(node_cidr.rsplit(".", 1)[0] + ".")
    if mode == "plain":
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=10) as resp:
            assert (resp.status, resp.read()) == (200, b"{}")
    else:
        for scheme in ("http", "https"):   # no TLS; TLS without a client certificate: no answer
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                urllib.request.urlopen(f"{scheme}://{address}/v2/", timeout=10,
                                       context=ssl._create_unverified_context() if scheme == "https" else None)

    pod = c.base / "web.yaml"
    pod.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                               "spec": {"nodeName": two, "terminationGracePeriodSeconds": 1,
                                        "containers": [{"name": "web", "image": "my-web-server:v1"}]}}))
    assert c.skiff("apply", "-f", str(pod)).returncode == 0

    def running():
        got = json.loads(c.skiff("get", "pod", "web", "-o", "json").stdout)
        return got["status"].get("phase") == "Running" and got
    wait_for("pod web Running on node 2", running, timeout=180)
    logs = wait_for("the pod's output", lambda: c.skiff("logs", "web").stdout)
    assert logs == "hello from node 1's build\n"
    described = c.skiff("describe", "pod", "web").stdout
    assert f'Pulling image "my-web-server:v1" from node {one}' in described, described
    assert f'Successfully pulled image "my-web-server:v1" from node {one} in ' in described, described
    # Node 2's own store now holds it (and busybox beneath it came along as its layer).
    assert "my-web-server:v1" in images(store_two)

    # From a client machine's store (one no node uses), through the API only.
    client_store = c.base / "client"
    archive = c.base / "busybox.tar"
    assert c.skiff("image", "save", "--data-dir", str(store_one), "-o", str(archive), "busybox").returncode == 0
    assert c.skiff("image", "load", "--data-dir", str(client_store), "-i", str(archive)).returncode == 0
    assert c.skiff("image", "tag", "--data-dir", str(client_store), "busybox", "my-tool:v1").returncode == 0
    pushed = c.skiff("image", "push", "--data-dir", str(client_store), "my-tool:v1")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert pushed.stdout.startswith(f"my-tool:v1: pushed into the cluster, node {one} (image sha256:"), pushed.stdout
    # Node 1 has busybox's layer already: it stays out of the archive, as docker push says.
    layer = ImageStore(root=client_store / "images").manifest("my-tool:v1")[1]["layers"][0]["digest"]
    assert pushed.stderr == f"{layer.removeprefix('sha256:')[:12]}: Layer already exists\n", pushed.stderr
    assert "my-tool:v1" in images(store_one) and "my-tool:v1" not in images(store_two)
    loaded = c.skiff("image", "load", "--cluster", "--node", two, "-i", str(archive))
    assert (loaded.returncode, loaded.stdout) == (0, f"Loaded image: busybox:latest (node {two})\n"), loaded.stderr
    assert "busybox:latest" in images(store_two)
    bad = c.base / "not-an-image.tar"
    bad.write_bytes(b"garbage" * 100)
    refused = c.skiff("image", "load", "--cluster", "-i", str(bad))
    assert refused.returncode == 1 and refused.stderr.startswith(f"error: node {one}: "), refused.stderr
    assert "not a readable tar archive" in refused.stderr
    assert not list((store_one / "images" / "tmp").iterdir())   # the spooled archive is gone too
    unknown = c.skiff("image", "load", "--cluster", "--node", "nosuch", "-i", str(archive))
    assert (unknown.returncode, unknown.stderr) == (1, 'error: nodes "nosuch" not found\n')

    # A build from a machine that is not a node: the context goes through the API, node 2 builds it.
    (context / "index.html").write_text("built on node 2 from a client\n")
    (context / "notes.key").write_text("stays on the client\n")
    (context / ".dockerignore").write_text("*.key\n")
    whole = c.base / "Dockerfile.whole"   # outside the context, as -f allows
    whole.write_text(DOCKERFILE.replace("COPY index.html /srv/index.html", "COPY . /srv/"))
    iid = c.base / "iid"
    remote = c.skiff("build", "--cluster", "--node", two, "-f", str(whole), "-t", "my-web-server:v2",
                     "--iidfile", str(iid), str(context), timeout=300)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    lines = remote.stdout.splitlines()
    assert lines[0].startswith(f"Sending build context to node {two}: "), lines
    assert "Successfully tagged my-web-server:v2" in lines, lines
    assert iid.read_text().startswith("sha256:")
    assert "my-web-server:v2" in images(store_two) and "my-web-server:v2" not in images(store_one)
    assert not list((store_two / "images" / "tmp").iterdir())   # the context is gone from the node
    failing = c.base / "failing"
    failing.mkdir()
    (failing / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    failed = c.skiff("build", "--cluster", str(failing), timeout=300)
    assert failed.returncode == 1 and failed.stderr.startswith(f"error: node {one}: "), failed.stderr
    # The pushed image runs on node 2 too: fetched from node 1; the one built on node 2 runs on node 1.
    built_there = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "remote-built"},
                   "spec": {"nodeName": one, "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "web", "image": "my-web-server:v2"}]}}
    pod.write_text(json.dumps(built_there))
    assert c.skiff("apply", "-f", str(pod)).returncode == 0
    assert wait_for("the remotely built image's output", lambda: c.skiff("logs", "remote-built").stdout,
                    timeout=180) == "built on node 2 from a client\n"
    assert "notes.key" not in c.skiff("exec", "remote-built", "--", "ls", "/srv").stdout
    tool = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tool"},
            "spec": {"nodeName": two, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "my-tool:v1", "command": ["sh", "-c", "echo pushed; sleep 3600"]}]}}
    pod.write_text(json.dumps(tool))
    assert c.skiff("apply", "-f", str(pod)).returncode == 0
    assert wait_for("the pushed image's output", lambda: c.skiff("logs", "tool").stdout, timeout=180) == "pushed\n"
    assert f'Pulling image "my-tool:v1" from node {one}' in c.skiff("describe", "pod", "tool").stdout

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr]) == {}
    assert not c.data_dir.exists()
