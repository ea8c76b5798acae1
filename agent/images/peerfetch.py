"""Fetch an image from a peer node's registry (agent/images/distribution.py) into this node's store.

By digest: the manifest is asked by the digest the peer reported in its
NodeStatus.images (`name@sha256:...`) when it did, and checked against it;
the config and every layer are asked by their digests and their sha256 is
checked before anything enters the store. Resumable: a layer is downloaded to
ROOT/tmp/partial-<hex>; a connection cut mid-blob is continued from the
partial file's size with `Range: bytes=N-` (a few times in this fetch, and by
a later fetch, which finds the file). A partial whose content turns out wrong
is deleted. Blocking (urllib); the puller runs it in a thread.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TextIO

from agent.images.errors import DigestMismatch, ImageError, ImageNotFound
from agent.images.reference import Reference, parse_reference
from agent.images.store import ImageStore, Layer

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
CHUNK = 1 << 20
RESUMES = 5   # connection cuts continued within one fetch


class PeerError(ImageError):
    """The peer cannot be reached or answered something other than the image."""


@dataclass(frozen=True)
class Peer:
    node: str          # the peer's Node name (for events: `from node skiff-node-2`)
    address: str       # HOST:PORT of its registry
    digest: str = ""   # the manifest digest it reported for the image, if it did


@dataclass(frozen=True)
class Fetched:
    image_id: str
    bytes_fetched: int      # bytes downloaded in this fetch (a resumed blob counts only its rest)
    layers_fetched: int
    layers_present: int


class PeerClient:
    def __init__(self, peer: Peer, *, tls: ssl.SSLContext | None = None, timeout: float = 30.0) -> None:
        self.peer = peer
        self.scheme = "https" if tls is not None else "http"
        self.tls, self.timeout = tls, timeout

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.peer.address}/v2/{path}"

    def open(self, path: str, *, headers: dict[str, str] | None = None):
        req = urllib.request.Request(self.url(path), headers=dict(headers or {}))
        try:
            return urllib.request.urlopen(req, timeout=self.timeout, context=self.tls)
        except urllib.error.HTTPError as exc:
            detail = _oci_message(exc.read(4000)) or exc.reason
            exc.close()
            if exc.code == 404:
                raise ImageNotFound(f"node {self.peer.node}: {detail}") from None
            raise PeerError(f"node {self.peer.node}: GET {self.url(path)}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PeerError(f"node {self.peer.node}: cannot reach its registry at {self.peer.address}: "
                            f"{reason}") from None


def _oci_message(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError):
        return ""


def _sha256_of(path: str) -> tuple["hashlib._Hash", int]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha, size


def download_blob(client: PeerClient, *, name: str, digest: str, size: int | None, dest: str,
                  resumes: int = RESUMES) -> int:
    """The blob into `dest` (appending to what a cut download left there), verified;
    returns the bytes downloaded now. A wrong result deletes `dest` and raises DigestMismatch."""
    fd = os.open(dest, os.O_RDWR | os.O_CREAT, 0o600)
    fetched = 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)   # two agents sharing a store fetch the blob one at a time
        with os.fdopen(os.dup(fd), "r+b") as out:
            sha, have = _sha256_of(dest)
            out.seek(have)
            cuts = 0
            while size is None or have < size:
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    resp = client.open(f"{name}/blobs/{digest}", headers=headers)
                except PeerError:
                    if cuts >= resumes or not have:
                        raise
                    cuts += 1
                    continue
                with resp:
                    if have and resp.status != 206:   # the peer ignored the Range: start over
                        out.seek(0)
                        out.truncate()
                        sha, have = hashlib.sha256(), 0
                    try:
                        while chunk := resp.read(CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            have += len(chunk)
                            fetched += len(chunk)
                    except (http.client.IncompleteRead, OSError) as exc:
                        out.flush()
                        cuts += 1
                        if cuts > resumes:
                            raise PeerError(f"node {client.peer.node}: blob {digest} cut off at {have} "
                                            f"bytes {cuts} times ({exc}); kept for the next try") from None
                        continue
                if size is None:
                    break
                if have < size:   # the answer ended early without an error: go on from here
                    cuts += 1
                    if cuts > resumes:
                        raise PeerError(f"node {client.peer.node}: blob {digest}: got {have} of {size} bytes")
            out.flush()
            os.fsync(out.fileno())
            got = "sha256:" + sha.hexdigest()
            if got != digest or (size is not None and have != size):
                out.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dest)
                raise DigestMismatch(f"blob from node {client.peer.node} announced as {digest} has digest {got} "
                                     f"({have} bytes): refused")
    finally:
        os.close(fd)
    return fetched


def _get_verified(client: PeerClient, path: str, expected: str) -> bytes:
    with client.open(path, headers={"Accept": ACCEPT}) as resp:
        body = resp.read()
    got = "sha256:" + hashlib.sha256(body).hexdigest()
    if got != expected:
        raise DigestMismatch(f"{path} from node {client.peer.node}: expected {expected}, content has {got}: refused")
    return body


def fetch(*, store: ImageStore, ref: str, peer: Peer, tls: ssl.SSLContext | None = None,
          progress: TextIO | None = None, timeout: float = 30.0) -> Fetched:
    """Copy the image `ref` from `peer` into `store` and tag it there."""
    parsed: Reference = parse_reference(ref)
    client = PeerClient(peer, tls=tls, timeout=timeout)
    name = parsed.name

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    wanted = parsed.digest or peer.digest
    if wanted:
        body = _get_verified(client, f"{name}/manifests/{wanted}", wanted)
        digest = wanted
    else:
        with client.open(f"{name}/manifests/{parsed.tag or 'latest'}", headers={"Accept": ACCEPT}) as resp:
            body = resp.read()
            announced = resp.headers.get("Docker-Content-Digest", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if announced and announced != digest:
            raise DigestMismatch(f"manifest of {parsed.familiar()} from node {peer.node}: announced {announced}, "
                                 f"content has {digest}: refused")
    manifest = json.loads(body)
    if "config" not in manifest or "layers" not in manifest:
        raise PeerError(f"node {peer.node}: {parsed.familiar()}: not an image manifest")
    config_digest = manifest["config"]["digest"]
    config_bytes = _get_verified(client, f"{name}/blobs/{config_digest}", config_digest)
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    layers: list[Layer] = []
    fetched = pulled = present = 0
    for desc, diff_id in zip(manifest["layers"], diff_ids):
        short = desc["digest"].removeprefix("sha256:")[:12]
        if store.has_blob(desc["digest"]) and store.layer_dir(diff_id).exists():
            say(f"{short}: Already exists")
            present += 1
        else:
            partial = str(store.tmp / f"partial-{desc['digest'].removeprefix('sha256:')}")
            n = download_blob(client, name=name, digest=desc["digest"], size=desc.get("size"), dest=partial)
            with open(partial, "rb") as f:
                store.add_layer_from_tar(fileobj=f, expected_digest=desc["digest"], expected_diff_id=diff_id,
                                         media_type=desc["mediaType"], size=desc.get("size"))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            fetched += n
            pulled += 1
            say(f"{short}: Pull complete ({n} bytes)")
        layers.append(Layer(digest=desc["digest"], diff_id=diff_id, size=desc.get("size", 0),
                            media_type=desc["mediaType"]))
    refs = [str(Reference(domain=parsed.domain, path=parsed.path, tag=parsed.tag))] if parsed.tag else []
    image_id = store.commit_raw(config_bytes=config_bytes, layers=layers, refs=refs,
                                manifest_bytes=body, manifest_digest=digest)
    say(f"Digest: {digest}")
    say(f"Status: Downloaded image for {parsed.familiar()} from node {peer.node}")
    return Fetched(image_id=image_id, bytes_fetched=fetched + len(body) + len(config_bytes),
                   layers_fetched=pulled, layers_present=present)
