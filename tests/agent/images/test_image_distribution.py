"""A node's registry for its peers (agent/images/distribution.py) over a real socket on
127.0.0.1, and the peer fetch (agent/images/peerfetch.py) against it: digests checked,
a cut download resumed with Range (decision 33)."""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import json
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.images import distribution
from agent.images.errors import DigestMismatch, ImageNotFound
from agent.images.peerfetch import Peer, fetch
from agent.images.store import ImageStore
from agent.peerimages import node_images, peers_for
from proto.skiff.v1 import types_pb2

from .conftest import make_tar

NAME = "docker.io/library/my-web-server"


def _image(store: ImageStore, ref: str = "my-web-server:v1", data: bytes = b"hello") -> tuple[str, dict]:
    big = bytes(range(256)) * 4096   # 1 MiB: a cut mid-layer has room
    layer = store.add_layer_from_tar(fileobj=io.BytesIO(make_tar([
        {"name": "srv", "type": "dir"}, {"name": "srv/index.html", "data": data},
        {"name": "srv/big", "data": big}])))
    store.commit_image(config={"config": {"Cmd": ["/bin/sh"]}}, layers=[layer], ref=ref)
    digest, manifest, _ = store.manifest(ref)
    return digest, manifest


class Served:
    """The distribution server on 127.0.0.1, its loop in a thread of its own."""

    def __init__(self, store: ImageStore) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = asyncio.run_coroutine_threadsafe(
            distribution.serve(store=store, host="127.0.0.1", port=0), self.loop).result(10)
        self.address = f"127.0.0.1:{self.port}"

    def get(self, path: str, *, method: str = "GET", headers: dict | None = None):
        req = urllib.request.Request(f"http://{self.address}{path}", method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def served(store):
    s = Served(store)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def other_store():
    root = Path(tempfile.mkdtemp(prefix="skiff-test-images-"))
    try:
        yield ImageStore(root=root / "images")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _oci_error(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def test_version_check_answers_empty_json(served):
    status, headers, body = served.get("/v2/")
    assert (status, json.loads(body)) == (200, {})
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_manifest_by_tag_and_by_digest_with_its_digest_header(store, served):
    digest, manifest = _image(store)
    status, headers, body = served.get(f"/v2/{NAME}/manifests/v1")
    assert status == 200
    assert headers["Docker-Content-Digest"] == digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert json.loads(body) == manifest
    assert served.get(f"/v2/{NAME}/manifests/{digest}")[2] == body
    status, headers, body = served.get(f"/v2/{NAME}/manifests/v1", method="HEAD")
    assert (status, body, int(headers["Content-Length"])) == (200, b"", len(store.read_blob(digest)))


def test_unknown_manifest_and_blob_are_404_with_oci_error_json(store, served):
    digest, manifest = _image(store)
    status, headers, body = served.get(f"/v2/{NAME}/manifests/v2")
    assert (status, _oci_error(body), headers["Content-Type"]) == (404, "MANIFEST_UNKNOWN", "application/json")
    assert "my-web-server:v2 is not on this node" in json.loads(body)["errors"][0]["message"]
    # A blob this node has, asked through a repository whose images do not hold it.
    layer = manifest["layers"][0]["digest"]
    status, _, body = served.get(f"/v2/docker.io/library/other/blobs/{layer}")
    assert (status, _oci_error(body)) == (404, "BLOB_UNKNOWN")
    status, _, body = served.get(f"/v2/{NAME}/blobs/sha256:{'0' * 64}")
    assert (status, _oci_error(body)) == (404, "BLOB_UNKNOWN")
    status, _, body = served.get(f"/v2/{NAME}/blobs/md5:abc")
    assert (status, _oci_error(body)) == (400, "DIGEST_INVALID")
    status, _, body = served.get(f"/v2/{NAME}/manifests/v1", method="DELETE")
    assert (status, _oci_error(body)) == (405, "UNSUPPORTED")


def test_blob_whole_and_by_range(store, served):
    _, manifest = _image(store)
    layer = manifest["layers"][0]["digest"]
    whole = store.read_blob(layer)
    status, headers, body = served.get(f"/v2/{NAME}/blobs/{layer}")
    assert (status, body, headers["Docker-Content-Digest"]) == (200, whole, layer)
    status, headers, body = served.get(f"/v2/{NAME}/blobs/{layer}", headers={"Range": "bytes=1000-"})
    assert (status, body) == (206, whole[1000:])
    assert headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    status, _, body = served.get(f"/v2/{NAME}/blobs/{layer}", headers={"Range": "bytes=10-19"})
    assert (status, body) == (206, whole[10:20])
    status, _, body = served.get(f"/v2/{NAME}/blobs/{layer}", headers={"Range": "bytes=-7"})
    assert (status, body) == (206, whole[-7:])
    status, headers, body = served.get(f"/v2/{NAME}/blobs/{layer}", headers={"Range": f"bytes={len(whole)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(whole)}")
    status, headers, body = served.get(f"/v2/{NAME}/blobs/{layer}", method="HEAD")
    assert (status, body, int(headers["Content-Length"])) == (200, b"", len(whole))


def test_fetch_copies_the_image_by_digest(store, served, other_store):
    digest, manifest = _image(store)
    peer = Peer(node="skiff-node-1", address=served.address, digest=digest)
    log = io.StringIO()
    fetched = fetch(store=other_store, ref="my-web-server:v1", peer=peer, progress=log)
    image = other_store.resolve("my-web-server:v1")
    assert image is not None and image.id == fetched.image_id == manifest["config"]["digest"]
    assert (image.lower_dirs[0] / "srv/index.html").read_bytes() == b"hello"
    assert other_store.manifest("my-web-server:v1")[0] == digest
    assert fetched.layers_fetched == 1 and "from node skiff-node-1" in log.getvalue()
    assert not list(other_store.tmp.iterdir())   # no partial file left


def test_fetch_refuses_a_blob_whose_digest_does_not_match(store, served, other_store):
    _, manifest = _image(store)
    layer = manifest["layers"][0]["digest"]
    path = store.blob_path(layer)
    tampered = bytearray(path.read_bytes())
    tampered[600] ^= 0xFF        # same size, other content
    path.write_bytes(bytes(tampered))
    with pytest.raises(DigestMismatch, match="refused"):
        fetch(store=other_store, ref="my-web-server:v1", peer=Peer(node="skiff-node-1", address=served.address))
    assert other_store.resolve("my-web-server:v1") is None
    assert not other_store.has_blob(layer) and not list(other_store.tmp.iterdir())


def test_fetch_of_an_image_the_peer_lacks_is_not_found(served, other_store):
    with pytest.raises(ImageNotFound, match="MANIFEST_UNKNOWN"):
        fetch(store=other_store, ref="my-web-server:v9", peer=Peer(node="skiff-node-1", address=served.address))


class _CuttingProxy(http.server.ThreadingHTTPServer):
    """In front of the registry: the first whole-blob answer is cut off halfway."""
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream, self.requests, self.cut = upstream, [], False
        super().__init__(("127.0.0.1", 0), _CuttingHandler)


class _CuttingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: _CuttingProxy = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept")}
        req = urllib.request.Request(f"http://{server.upstream}{self.path}", headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            resp = exc
        body = resp.read()
        self.send_response(resp.status if hasattr(resp, "status") else resp.code)
        for k, v in resp.headers.items():
            if k.lower() not in ("connection",):
                self.send_header(k, v)
        self.end_headers()
        if "/blobs/" in self.path and not server.cut and len(body) > 100000:
            server.cut = True
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def test_a_cut_download_resumes_from_the_partial_size_with_range(store, served, other_store):
    digest, manifest = _image(store)
    proxy = _CuttingProxy(served.address)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        peer = Peer(node="skiff-node-1", address=f"127.0.0.1:{proxy.server_address[1]}", digest=digest)
        fetch(store=other_store, ref="my-web-server:v1", peer=peer)
    finally:
        proxy.shutdown()
        proxy.server_close()
    size = manifest["layers"][0]["size"]
    layer_requests = [r for r in proxy.requests if manifest["layers"][0]["digest"] in r[0]]
    assert proxy.cut
    assert layer_requests == [(layer_requests[0][0], None), (layer_requests[0][0], f"bytes={size // 2}-")]
    assert other_store.resolve("my-web-server:v1") is not None


def test_a_partial_left_by_an_earlier_try_is_continued(store, served, other_store):
    digest, manifest = _image(store)
    layer = manifest["layers"][0]
    partial = other_store.tmp / f"partial-{layer['digest'].removeprefix('sha256:')}"
    partial.write_bytes(store.read_blob(layer["digest"])[:1000])
    fetched = fetch(store=other_store, ref="my-web-server:v1",
                    peer=Peer(node="skiff-node-1", address=served.address, digest=digest))
    config_and_manifest = len(store.read_blob(digest)) + manifest["config"]["size"]
    assert fetched.bytes_fetched == layer["size"] - 1000 + config_and_manifest
    assert other_store.resolve("my-web-server:v1") is not None and not partial.exists()


def test_node_images_and_the_peers_asked_first(store):
    digest, _ = _image(store)
    images = node_images(store)
    assert [sorted(i.names) for i in images] == [sorted([f"{NAME}:v1", f"{NAME}@{digest}"])]

    def node(name: str, images=(), address="10.0.0.1:10251") -> types_pb2.Node:
        n = types_pb2.Node()
        n.metadata.name = name
        if address:
            n.metadata.annotations["skiff.io/image-registry"] = address
        n.status.images.extend(images)
        return n
    nodes = [node("a"), node("b", images), node("c", address=""), node("self", images)]
    peers = peers_for(nodes, ref="my-web-server:v1", self_name="self")
    assert [(p.node, p.digest) for p in peers] == [("b", digest), ("a", "")]


class _Upstream:
    """The registry path (agent.imagepuller.StoreRegistry's place): records calls, may fail."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls, self.error = [], error

    def pull(self, *, ref: str, progress) -> str:
        self.calls.append(ref)
        if self.error is not None:
            raise self.error
        return "sha256:upstream"


class _Progress(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def source(self, node: str) -> None:
        self.sources.append(node)


def _peer_node(name: str, address: str, store: ImageStore | None = None) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.annotations["skiff.io/image-registry"] = address
    if store is not None:
        n.status.images.extend(node_images(store))
    return n


def test_cluster_registry_asks_peers_first_for_a_name_without_a_registry_host(store, served, other_store):
    from agent.peerimages import ClusterRegistry
    _image(store)
    upstream = _Upstream()
    registry = ClusterRegistry(store=other_store, upstream=upstream, node_name="node-2")
    registry.attach_nodes(lambda: [_peer_node("node-1", served.address, store),
                                   _peer_node("node-2", "127.0.0.1:1", other_store)])
    progress = _Progress()
    image_id = registry.pull(ref="docker.io/library/my-web-server:v1", progress=progress)
    assert (upstream.calls, progress.sources) == ([], ["node-1"])
    assert other_store.resolve("my-web-server:v1").id == image_id
    # No peer has it: the registry is asked, as before.
    assert registry.pull(ref="docker.io/library/nothing:v1", progress=_Progress()) == "sha256:upstream"
    assert upstream.calls == ["docker.io/library/nothing:v1"]


def test_cluster_registry_falls_back_to_peers_only_when_the_registry_is_unreachable(store, served, other_store):
    from agent.images.registry import RegistryError
    from agent.peerimages import ClusterRegistry
    _image(store, ref="registry.example:5000/team/app:1")
    nodes = lambda: [_peer_node("node-1", served.address, store)]   # noqa: E731
    unreachable = _Upstream(RegistryError("registry.example:5000: cannot connect: [Errno 111] refused"))
    registry = ClusterRegistry(store=other_store, upstream=unreachable, node_name="node-2")
    registry.attach_nodes(nodes)
    registry.pull(ref="registry.example:5000/team/app:1", progress=_Progress())
    assert unreachable.calls == ["registry.example:5000/team/app:1"]
    assert other_store.resolve("registry.example:5000/team/app:1") is not None
    denied = _Upstream(RegistryError("registry.example:5000: access denied (403)"))
    registry = ClusterRegistry(store=other_store, upstream=denied, node_name="node-2")
    registry.attach_nodes(nodes)
    with pytest.raises(RegistryError, match="access denied"):   # the registry's answer stands
        registry.pull(ref="registry.example:5000/team/app:1", progress=_Progress())


def test_cluster_registry_goes_to_the_registry_when_the_peers_cannot_answer(other_store):
    from agent.images.registry import RegistryError
    from agent.peerimages import ClusterRegistry
    upstream = _Upstream()
    registry = ClusterRegistry(store=other_store, upstream=upstream, node_name="node-2")
    registry.attach_nodes(lambda: [_peer_node("node-1", "127.0.0.1:1")])   # nothing listens there
    assert registry.pull(ref="docker.io/library/busybox:latest", progress=_Progress()) == "sha256:upstream"
    offline = _Upstream(RegistryError("docker.io: cannot connect: [Errno 101] Network is unreachable"))
    registry = ClusterRegistry(store=other_store, upstream=offline, node_name="node-2")
    registry.attach_nodes(lambda: [_peer_node("node-1", "127.0.0.1:1")])
    with pytest.raises(RegistryError) as failed:   # both reasons, in one line
        registry.pull(ref="docker.io/library/busybox:latest", progress=_Progress())
    assert "Network is unreachable" in str(failed.value)
    assert "and from the peer nodes: fetching from the peer nodes failed: node node-1: cannot reach its " \
           "registry at 127.0.0.1:1" in str(failed.value)
