"""Images from the cluster itself (decision 33): the node's Registry that asks peer nodes first.

Each agent serves its store read-only over the OCI Distribution API
(agent/images/distribution.py) and says where in its Node: the annotation
skiff.io/image-registry (HOST:PORT), and the images it holds in
status.images (normalized `name:tag` and `name@sha256:<manifest digest>`).

ClusterRegistry.pull, for an image this node lacks:
  - a name without a registry host (`my-web-server:v1`, which normalizes to
    docker.io/library/...) is fetched from a peer node first: those that report
    it (by its manifest digest), then any other peer serving images; only when
    none has it does the registry (Docker Hub) get asked;
  - a name with a host (`ghcr.io/x/y:1`, `localhost:5000/app`) goes to its
    registry as before, and to the peers only when the registry cannot be reached.
The fetch itself is agent/images/peerfetch.py: by digest, verified, resumable.
"""
from __future__ import annotations

import logging
import ssl
from typing import Callable, Iterable

from agent.images.errors import DigestMismatch, ImageError, ImageNotFound
from agent.images.reference import DEFAULT_DOMAIN, parse_reference
from agent.images.store import ImageStore
from proto.skiff.v1 import types_pb2

log = logging.getLogger(__name__)

REGISTRY_ANNOTATION = "skiff.io/image-registry"
MAX_IMAGES = 50   # kubelet's nodeStatusMaxImages: the largest ones are reported


def node_images(store: ImageStore) -> list[types_pb2.ContainerImage]:
    """What status.images says of `store`: one entry per manifest, its tags and its digest name."""
    by_digest: dict[str, types_pb2.ContainerImage] = {}
    for row in store.list():
        if not row.reference:
            continue
        ref = parse_reference(row.reference)
        entry = by_digest.get(row.manifest_digest)
        if entry is None:
            entry = by_digest[row.manifest_digest] = types_pb2.ContainerImage(size_bytes=row.size)
            entry.names.append(f"{ref.name}@{row.manifest_digest}")
        entry.names.append(row.reference)
    return sorted(by_digest.values(), key=lambda i: -i.size_bytes)[:MAX_IMAGES]


class ImagesReport:
    """status.images of the store, re-read only when its index changed (the heartbeat asks often)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self._seen: tuple[int, int] | None = None
        self._images: list[types_pb2.ContainerImage] = []

    def __call__(self) -> list[types_pb2.ContainerImage]:
        try:
            st = (self.store.root / "index.json").stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return []
        if stamp != self._seen:
            self._images, self._seen = node_images(self.store), stamp
        return list(self._images)


def peers_for(nodes: Iterable[types_pb2.Node], *, ref: str, self_name: str) -> list:
    """The peers to ask for `ref`, those reporting it first (with its digest)."""
    from agent.images.peerfetch import Peer
    parsed = parse_reference(ref)
    holders, others = [], []
    for node in nodes:
        address = node.metadata.annotations.get(REGISTRY_ANNOTATION, "")
        if not address or node.metadata.name == self_name:
            continue
        digest = ""
        for image in node.status.images:
            names = set(image.names)
            if str(parsed) in names or (parsed.digest and f"{parsed.name}@{parsed.digest}" in names):
                digest = next((n.rpartition("@")[2] for n in image.names
                               if n.startswith(f"{parsed.name}@")), "")
                break
        else:
            others.append(Peer(node=node.metadata.name, address=address))
            continue
        holders.append(Peer(node=node.metadata.name, address=address, digest=digest))
    return sorted(holders, key=lambda p: p.node) + sorted(others, key=lambda p: p.node)


class ClusterRegistry:
    """The agent's Registry (agent/imagepuller.py): peers, then `upstream` (or the other way round)."""

    def __init__(self, *, store: ImageStore, upstream, node_name: str,
                 tls: ssl.SSLContext | None = None) -> None:
        self.store, self.upstream, self.node_name, self.tls = store, upstream, node_name, tls
        self._nodes: Callable[[], list[types_pb2.Node]] = lambda: []

    def attach_nodes(self, nodes: Callable[[], list[types_pb2.Node]]) -> None:
        """Where the peers are: the Node informer's list."""
        self._nodes = nodes

    def _peers(self, ref: str) -> list:
        for _ in range(3):
            try:
                return peers_for(list(self._nodes()), ref=ref, self_name=self.node_name)
            except RuntimeError:   # the informer's dict changed while copied from this thread: again
                continue
        return []

    def pull(self, *, ref: str, progress, credentials=None) -> str:
        local_name = parse_reference(ref).domain == DEFAULT_DOMAIN
        peers_said = ""
        if local_name:
            try:
                return self._from_peers(ref, progress)
            except DigestMismatch:
                raise   # a peer serving wrong content is reported, not papered over
            except ImageError as exc:
                log.info("%s: not from a peer node (%s); asking its registry", ref, exc)
                peers_said = str(exc)
        try:
            if credentials is not None:
                return self.upstream.pull(ref=ref, progress=progress, credentials=credentials)
            return self.upstream.pull(ref=ref, progress=progress)
        except ImageError as exc:
            if local_name:
                if peers_said and not isinstance(exc, ImageNotFound):
                    raise type(exc)(f"{exc} (and from the peer nodes: {peers_said})") from None
                raise
            if "cannot connect" not in str(exc):
                raise
            log.info("%s: its registry is unreachable (%s); asking the peer nodes", ref, exc)
            return self._from_peers(ref, progress)

    def _from_peers(self, ref: str, progress) -> str:
        from agent.images.peerfetch import PeerClient, PeerError, fetch
        peers = self._peers(ref)
        if not peers:
            raise ImageNotFound("no peer node serves images")
        parsed = parse_reference(ref)
        problems = []
        for peer in peers:
            try:
                if not peer.digest:   # not reported by it: ask before naming it as the source
                    PeerClient(peer, tls=self.tls).open(
                        f"{parsed.name}/manifests/{parsed.digest or parsed.tag or 'latest'}").close()
                progress.source(peer.node)
                return fetch(store=self.store, ref=ref, peer=peer, tls=self.tls, progress=progress).image_id
            except ImageNotFound as exc:
                problems.append(str(exc))
            except PeerError as exc:
                log.warning("fetching %s from node %s failed: %s", ref, peer.node, exc)
                problems.append(str(exc))
        if all("MANIFEST_UNKNOWN" in p or "BLOB_UNKNOWN" in p for p in problems):
            raise ImageNotFound(f"no peer node has it ({'; '.join(problems)})")
        raise ImageError(f"fetching from the peer nodes failed: {'; '.join(problems)}")
