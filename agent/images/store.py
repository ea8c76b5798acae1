"""The node's image store: an OCI image layout plus unpacked layers.

    ROOT/oci-layout, ROOT/index.json    the OCI layout; index.json is also the tag
                                        database (annotation org.opencontainers.image.ref.name
                                        holds the normalized reference)
    ROOT/blobs/sha256/<hex>             manifests, configs, layer tars (content-addressed)
    ROOT/layers/<diffid-hex>/           each layer unpacked once, an overlay lower dir
    ROOT/tmp/                           work space; same filesystem, so rename is atomic

Every write lands in ROOT/tmp (or a temp file beside its target), is fsynced and
renamed into place, so a crash leaves whole files or nothing. index.json is
read-modify-written under an exclusive flock of ROOT/lock; two processes
unpacking the same layer serialize on a flock per diff id, and the loser finds
the winner's directory. The pod workers call `resolve`; the CLI, archives and
the builder use the rest.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from agent.images.errors import DigestMismatch, ImageNotFound, InvalidReference
from agent.images.layers import HashingReader, extract_layer, write_layer_tar
from agent.images.reference import parse_reference
from agent.images.types import Image, ImageConfig

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Layer:
    digest: str        # "sha256:..." of the blob as stored
    diff_id: str       # "sha256:..." of the uncompressed tar
    size: int          # blob size
    media_type: str = MT_LAYER


@dataclass(frozen=True)
class ImageRow:
    repository: str    # familiar ("busybox"), "<none>" for an untagged image
    tag: str
    reference: str     # normalized, "" if untagged
    image_id: str      # "sha256:<config digest>"
    manifest_digest: str
    created: str
    created_ts: float
    size: int


@dataclass(frozen=True)
class PruneResult:
    blobs: int
    layers: int
    bytes: int


def _fsync_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (the directory entry, not just the data)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidReference(f"unsupported digest {digest!r} (want sha256:<64 hex>)")
    return hexpart


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def config_from_json(cfg: dict) -> ImageConfig:
    c = cfg.get("config") or {}
    return ImageConfig(
        env=tuple(c.get("Env") or ()),
        entrypoint=tuple(c["Entrypoint"]) if c.get("Entrypoint") is not None else None,
        cmd=tuple(c["Cmd"]) if c.get("Cmd") is not None else None,
        working_dir=c.get("WorkingDir") or "",
        user=c.get("User") or "",
        exposed_ports=tuple(sorted((c.get("ExposedPorts") or {}).keys())),
        labels=dict(c.get("Labels") or {}),
        stop_signal=c.get("StopSignal") or "",
        volumes=tuple(sorted((c.get("Volumes") or {}).keys())),
    )


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.layers = self.root / "layers"
        self.tmp = self.root / "tmp"
        for d in (self.blobs, self.layers, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            _fsync_write(layout, b'{"imageLayoutVersion":"1.0.0"}')

    # ---- locking -------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ---- blobs ---------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the store") from None
        return data

    def read_json(self, digest: str) -> dict:
        return json.loads(self.read_blob(digest))

    def put_blob(self, data: bytes, *, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and expected != digest:
            raise DigestMismatch(f"content announced as {expected} has digest {digest}")
        path = self.blob_path(digest)
        if not path.exists():
            _fsync_write(path, data)
        return digest

    def put_json(self, obj: object) -> tuple[str, int]:
        data = canonical_json(obj)
        return self.put_blob(data), len(data)

    # ---- layers --------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / _hex(diff_id)

    def add_layer_from_tar(self, *, fileobj: BinaryIO, expected_digest: str | None = None,
                           expected_diff_id: str | None = None, media_type: str | None = None,
                           size: int | None = None) -> Layer:
        """Store a layer blob and unpack it. Verifies the digests it is given and
        the size; on any error nothing of it is left in the store."""
        if expected_diff_id and self.layer_dir(expected_diff_id).exists() and expected_digest \
                and self.has_blob(expected_digest):
            # Already here (another image, or another process won the race).
            return Layer(digest=expected_digest, diff_id=expected_diff_id,
                         size=self.blob_path(expected_digest).stat().st_size,
                         media_type=media_type or MT_LAYER)
        fd, tmp_blob = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))
        os.chmod(work, 0o755)
        try:
            reader = HashingReader(fileobj)
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + reader.hexdigest()
            if size is not None and reader.count != size:
                raise DigestMismatch(f"layer {expected_digest or digest}: got {reader.count} bytes, "
                                     f"expected {size} (truncated?)")
            if expected_digest and digest != expected_digest:
                raise DigestMismatch(f"layer announced as {expected_digest} has digest {digest}")
            with open(tmp_blob, "rb") as f:
                if media_type is None:
                    media_type = MT_LAYER_GZIP if f.read(2) == b"\x1f\x8b" else MT_LAYER
                    f.seek(0)
                diff_id = "sha256:" + extract_layer(fileobj=f, dest=work)
            if expected_diff_id and diff_id != expected_diff_id:
                raise DigestMismatch(f"layer {digest}: uncompressed digest {diff_id} is not the "
                                     f"config's diff id {expected_diff_id}")
            self._install_layer(work=work, diff_id=diff_id)
            blob = self.blob_path(digest)
            if not blob.exists():
                os.rename(tmp_blob, blob)
                _fsync_dir(self.blobs)
            return Layer(digest=digest, diff_id=diff_id, size=reader.count, media_type=media_type)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_blob)
            if work.exists():
                shutil.rmtree(work)

    def _install_layer(self, *, work: Path, diff_id: str) -> None:
        dest = self.layer_dir(diff_id)
        with self._lock(f"layers/.{_hex(diff_id)}.lock"):
            if dest.exists():
                return  # identical content, unpacked by someone else first
            os.rename(work, dest)
            _fsync_dir(self.layers)

    def add_layer_from_dir(self, *, src: Path, move: bool = False) -> Layer:
        """Make a layer of a directory Skiff prepared (COPY, a RUN's upper dir).

        With move=True and src on the store's filesystem, src itself becomes the
        unpacked layer (no second extraction); otherwise the tar is unpacked."""
        fd, tmp_blob = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "w+b") as out:
                write_layer_tar(src=src, out=out)
                out.flush()
                os.fsync(out.fileno())
                out.seek(0)
                sha = hashlib.sha256()
                while chunk := out.read(1 << 20):
                    sha.update(chunk)
                size = out.tell()
            digest = "sha256:" + sha.hexdigest()
            if move and not self.layer_dir(digest).exists():
                try:
                    self._install_layer(work=src, diff_id=digest)
                    moved = True
                except OSError:
                    moved = False
            else:
                moved = False
            if not moved and not self.layer_dir(digest).exists():
                with open(tmp_blob, "rb") as f:
                    return self.add_layer_from_tar(fileobj=f, expected_digest=digest,
                                                   expected_diff_id=digest)
            blob = self.blob_path(digest)
            if not blob.exists():
                os.rename(tmp_blob, blob)
                _fsync_dir(self.blobs)
            return Layer(digest=digest, diff_id=digest, size=size)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_blob)

    # ---- images --------------------------------------------------------
    def commit_image(self, *, config: dict, layers: list[Layer], ref: str | None) -> str:
        """Write config + manifest for `layers` (lowest first), tag `ref`; returns the image id."""
        config = dict(config)
        config.setdefault("architecture", _arch())
        config.setdefault("os", "linux")
        config.setdefault("created", _now())
        config["rootfs"] = {"type": "layers", "diff_ids": [l.diff_id for l in layers]}
        return self.commit_raw(config_bytes=canonical_json(config), layers=layers,
                               refs=[ref] if ref else [])

    def commit_raw(self, *, config_bytes: bytes, layers: list[Layer], refs: list[str],
                   manifest_bytes: bytes | None = None, manifest_digest: str | None = None) -> str:
        """Store a config blob exactly as given (its digest is the image id, as
        docker computes it) and a manifest (given, e.g. from an OCI archive, or
        made here), then tag each of refs. Returns the image id."""
        config_digest = self.put_blob(config_bytes)
        config_size = len(config_bytes)
        if manifest_bytes is not None:
            digest = self.put_blob(manifest_bytes, expected=manifest_digest)
            for ref in refs or [None]:
                self._set_index_entry(ref=str(parse_reference(ref)) if ref else None,
                                      digest=digest, size=len(manifest_bytes))
            return config_digest
        manifest = {
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in layers],
        }
        digest, size = self.put_json(manifest)
        for ref in refs or [None]:
            self._set_index_entry(ref=str(parse_reference(ref)) if ref else None,
                                  digest=digest, size=size)
        return config_digest

    def _read_index(self) -> dict:
        try:
            return json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": []}

    def _write_index(self, index: dict) -> None:
        _fsync_write(self.root / "index.json", json.dumps(index, indent=1).encode())

    def _set_index_entry(self, *, ref: str | None, digest: str, size: int) -> None:
        with self._lock("lock"):
            index = self._read_index()
            entries = [m for m in index["manifests"]
                       if not (ref and m.get("annotations", {}).get(REF_ANNOTATION) == ref)
                       and not (m["digest"] == digest and not m.get("annotations"))]
            entry: dict = {"mediaType": MT_MANIFEST, "digest": digest, "size": size}
            if ref:
                entry["annotations"] = {REF_ANNOTATION: ref}
            elif any(m["digest"] == digest for m in entries):
                entry = {}  # already reachable by a tag
            if entry:
                entries.append(entry)
            index["manifests"] = entries
            self._write_index(index)

    def _entries(self) -> list[dict]:
        return self._read_index()["manifests"]

    def _find_manifest(self, ref: str) -> tuple[str, str]:
        """(manifest digest, normalized ref or "") for a reference or an image id."""
        entries = self._entries()
        bare = ref.removeprefix("sha256:")
        if ref.startswith("sha256:") or (len(bare) >= 6 and all(c in "0123456789abcdef" for c in bare)):
            matches = {m["digest"] for m in entries
                       if self._config_digest(m["digest"]).removeprefix("sha256:").startswith(bare)
                       or m["digest"].removeprefix("sha256:").startswith(bare)}
            if len(matches) == 1:
                return matches.pop(), ""
            if len(matches) > 1:
                raise ImageNotFound(f"image id prefix {ref!r} is ambiguous")
            if ref.startswith("sha256:"):
                raise ImageNotFound(f"no such image: {ref}")
        parsed = parse_reference(ref)
        if parsed.digest:
            if self.has_blob(parsed.digest):
                return parsed.digest, str(parsed)
            raise ImageNotFound(f"no such image: {parsed.familiar()}")
        normalized = str(parsed)
        for m in entries:
            if m.get("annotations", {}).get(REF_ANNOTATION) == normalized:
                return m["digest"], normalized
        raise ImageNotFound(f"no such image: {parsed.familiar()}")

    def _config_digest(self, manifest_digest: str) -> str:
        try:
            return self.read_json(manifest_digest)["config"]["digest"]
        except (ImageNotFound, KeyError, ValueError):
            return ""

    def manifest(self, ref: str) -> tuple[str, dict, dict]:
        """(manifest digest, manifest, config) of an image."""
        digest, _ = self._find_manifest(ref)
        manifest = self.read_json(digest)
        return digest, manifest, self.read_json(manifest["config"]["digest"])

    def ensure_unpacked(self, *, manifest: dict, config: dict) -> tuple[Path, ...]:
        """The image's lower dirs, lowest first; re-unpacks a layer whose dir is gone."""
        dirs = []
        for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
            d = self.layer_dir(diff_id)
            if not d.exists():
                with open(self.blob_path(desc["digest"]), "rb") as f:
                    self.add_layer_from_tar(fileobj=f, expected_digest=desc["digest"],
                                            expected_diff_id=diff_id, media_type=desc["mediaType"])
            dirs.append(d)
        return tuple(dirs)

    def resolve(self, ref: str) -> Image | None:
        """The image a container of `ref` runs, or None if it is not here."""
        try:
            digest, normalized = self._find_manifest(ref)
            manifest = self.read_json(digest)
            config = self.read_json(manifest["config"]["digest"])
        except (ImageNotFound, InvalidReference):
            return None
        lower = self.ensure_unpacked(manifest=manifest, config=config)
        return Image(id=manifest["config"]["digest"], reference=normalized or ref,
                     lower_dirs=lower, config=config_from_json(config),
                     size=sum(l["size"] for l in manifest["layers"]))

    def list(self) -> list[ImageRow]:
        rows = []
        for m in self._entries():
            try:
                manifest = self.read_json(m["digest"])
                config = self.read_json(manifest["config"]["digest"])
            except ImageNotFound:
                continue
            ref = m.get("annotations", {}).get(REF_ANNOTATION, "")
            if ref:
                p = parse_reference(ref)
                repo, tag = p.familiar_name(), p.tag or "<none>"
            else:
                repo, tag = "<none>", "<none>"
            created = config.get("created", "")
            rows.append(ImageRow(repository=repo, tag=tag, reference=ref,
                                 image_id=manifest["config"]["digest"], manifest_digest=m["digest"],
                                 created=created, created_ts=_parse_time(created),
                                 size=sum(l["size"] for l in manifest["layers"])))
        return sorted(rows, key=lambda r: (-r.created_ts, r.repository, r.tag))

    def inspect(self, ref: str) -> dict:
        digest, manifest, config = self.manifest(ref)
        tags = [r.reference for r in self.list() if r.manifest_digest == digest and r.reference]
        return {"Id": manifest["config"]["digest"], "RepoTags": [parse_reference(t).familiar() for t in tags],
                "Digest": digest, "Created": config.get("created", ""),
                "Architecture": config.get("architecture", ""), "Os": config.get("os", ""),
                "Size": sum(l["size"] for l in manifest["layers"]),
                "Config": config.get("config", {}), "RootFS": config.get("rootfs", {}),
                "History": config.get("history", []), "Manifest": manifest}

    def tag(self, src: str, dst: str) -> None:
        digest, _ = self._find_manifest(src)
        self._set_index_entry(ref=str(parse_reference(dst)), digest=digest,
                              size=self.blob_path(digest).stat().st_size)

    def remove(self, ref: str) -> list[str]:
        """Untag `ref` (or, for an image id, every tag of it); returns docker-style lines.
        Blobs and layers go at the next prune."""
        digest, normalized = self._find_manifest(ref)
        if "@" in normalized:
            normalized = ""  # name@digest names the manifest itself: every tag of it goes
        out = []
        with self._lock("lock"):
            index = self._read_index()
            keep = []
            for m in index["manifests"]:
                name = m.get("annotations", {}).get(REF_ANNOTATION, "")
                if m["digest"] == digest and (not normalized or name == normalized or not name):
                    if name:
                        out.append(f"Untagged: {parse_reference(name).familiar()}")
                    continue
                keep.append(m)
            if not any(m["digest"] == digest for m in keep):
                out.append(f"Deleted: {self._config_digest(digest) or digest}")
            index["manifests"] = keep
            self._write_index(index)
        return out

    def layers_in_use(self) -> set[str]:
        """Hex diff ids of our layers that some overlay mount uses as a lower dir
        right now (containers mount in their own mount namespaces, so every
        namespace is looked at once)."""
        prefix = str(self.layers) + "/"
        seen_ns: set[int] = set()
        used: set[str] = set()
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                ns = os.stat(f"/proc/{pid}/ns/mnt").st_ino
                if ns in seen_ns:
                    continue
                seen_ns.add(ns)
                with open(f"/proc/{pid}/mountinfo") as f:
                    text = f.read()
            except OSError:
                continue  # the process went away, or is not ours to read
            for line in text.splitlines():
                if " - overlay " not in line:
                    continue
                for opt in line.rsplit(" ", 1)[-1].split(","):
                    if opt.startswith(("lowerdir=", "lowerdir+=")):
                        for d in opt.partition("=")[2].split(":"):
                            if d.startswith(prefix):
                                used.add(d[len(prefix):].split("/")[0])
        return used

    def prune(self, *, keep_layers: frozenset[str] = frozenset()) -> PruneResult:
        """Remove blobs and unpacked layers no tagged image references. Layers
        a running container has mounted are kept, and so are `keep_layers`
        (diff ids)."""
        in_use = self.layers_in_use()
        with self._lock("lock"):
            live_blobs: set[str] = set()
            live_layers: set[str] = {_hex(d) for d in keep_layers} | in_use
            for m in self._entries():
                try:
                    manifest = self.read_json(m["digest"])
                    config = self.read_json(manifest["config"]["digest"])
                except ImageNotFound:
                    continue
                live_blobs |= {_hex(m["digest"]), _hex(manifest["config"]["digest"])}
                live_blobs |= {_hex(l["digest"]) for l in manifest["layers"]}
                live_layers |= {_hex(d) for d in config["rootfs"]["diff_ids"]}
            # Layers kept for the cache keep their blobs (same digest when uncompressed).
            live_blobs |= live_layers
            blobs = layers = freed = 0
            for p in self.blobs.iterdir():
                if p.name not in live_blobs:
                    freed += p.stat().st_size
                    p.unlink()
                    blobs += 1
            for p in self.layers.iterdir():
                if p.is_dir() and p.name not in live_layers:
                    shutil.rmtree(p)
                    layers += 1
                elif p.name.endswith(".lock") and p.name[1:-5] not in live_layers:
                    p.unlink()
            for p in self.tmp.iterdir():
                # Leftovers of a crash; a live writer holds its files only for seconds.
                if time.time() - p.lstat().st_mtime > 3600:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            return PruneResult(blobs=blobs, layers=layers, bytes=freed)


def _arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse_time(text: str) -> float:
    import datetime
    if not text:
        return 0.0
    try:
        t = text.replace("Z", "+00:00")
        if "." in t:  # docker writes nanoseconds; fromisoformat takes at most micro
            head, _, tail = t.partition(".")
            frac = "".join(c for c in tail if c.isdigit())
            zone = tail[len(frac):]
            t = f"{head}.{frac[:6]}{zone}"
        return datetime.datetime.fromisoformat(t).timestamp()
    except ValueError:
        return 0.0
