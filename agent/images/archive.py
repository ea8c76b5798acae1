"""Image archives in and out of the store: `docker save` / OCI layout tars, and
`docker import` of a root filesystem tarball.

load: an archive holding `index.json` + `oci-layout` is read as an OCI image
layout (every blob's digest and size verified); one holding `manifest.json` is
read as `docker save` output (each layer's diff id checked against the config).
save: writes both views at once — an OCI layout plus docker's manifest.json
pointing into the same blobs — so `docker load`, `podman load` and
`skiff image load` all take it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from agent.images.errors import DigestMismatch, ImageError
from agent.images.reference import parse_reference
from agent.images.store import MT_MANIFEST, REF_ANNOTATION, ImageStore, Layer, _arch
from skiff.progress import CountingFile, Progress

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONTAINERD_NAME = "io.containerd.image.name"


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    name = name.lstrip("./") if name.startswith("./") else name
    for candidate in (name, "./" + name):
        try:
            return tar.getmember(candidate)
        except KeyError:
            continue
    raise ImageError(f"archive has no entry {name!r}")


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = _member(tar, name)
    f = tar.extractfile(member)
    if f is None:
        raise ImageError(f"archive entry {name!r} is not a file")
    return f.read()


def _metered(f, *, progress: Progress | None, stage: str, total: int | None):
    """`f` itself, or `f` reporting its position to `progress`."""
    if progress is None:
        return f
    progress.update(stage=stage, nbytes=0, total_bytes=total)
    return CountingFile(f, lambda n: progress.update(stage=stage, nbytes=n, total_bytes=total))


def load_archive(*, store: ImageStore, path: Path, progress: Progress | None = None,
                 present: frozenset[str] = frozenset()) -> list[tuple[str | None, str]]:
    """Load every image in the archive; returns (familiar ref or None, image id) pairs.
    `progress` gets how far into the archive the load is. An OCI layout may leave out the
    blob of a layer in `present` (the layers this store told the sender it has): it is read
    from the store instead, and verified as if it had come in the archive."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise ImageError(f"{path}: not a readable tar archive: {exc}") from exc
    try:
        f = _metered(raw, progress=progress, stage=f"loading {path.name}", total=os.fstat(raw.fileno()).st_size)
        tar = tarfile.open(fileobj=f, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raw.close()
        raise ImageError(f"{path}: not a readable tar archive: {exc}") from exc
    with raw, tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
        if "index.json" in names and "oci-layout" in names:
            return _load_oci(store=store, tar=tar, present=present)
        if "manifest.json" in names:
            return _load_docker(store=store, tar=tar)
        raise ImageError(f"{path}: neither an OCI layout (index.json + oci-layout) "
                         f"nor a docker save archive (manifest.json)")


def _load_docker(*, store: ImageStore, tar: tarfile.TarFile) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for entry in json.loads(_read(tar, "manifest.json")):
        config_bytes = _read(tar, entry["Config"])
        config = json.loads(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(entry["Layers"]):
            raise ImageError(f"{entry['Config']}: {len(diff_ids)} diff ids for "
                             f"{len(entry['Layers'])} layers")
        layers = []
        for name, diff_id in zip(entry["Layers"], diff_ids):
            f = tar.extractfile(_member(tar, name))
            if f is None:
                raise ImageError(f"archive entry {name!r} is not a file")
            try:
                layers.append(store.add_layer_from_tar(fileobj=f, expected_diff_id=diff_id))
            except DigestMismatch as exc:
                raise DigestMismatch(f"{name}: {exc}") from None
        refs = [str(parse_reference(t)) for t in entry.get("RepoTags") or []]
        image_id = store.commit_raw(config_bytes=config_bytes, layers=layers, refs=refs)
        out += [(parse_reference(r).familiar(), image_id) for r in refs] or [(None, image_id)]
    return out


def _verified_blob(tar: tarfile.TarFile, desc: dict) -> bytes:
    import hashlib
    data = _read(tar, "blobs/" + desc["digest"].replace(":", "/"))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest != desc["digest"] or ("size" in desc and len(data) != desc["size"]):
        raise DigestMismatch(f"blob {desc['digest']}: content has digest {digest}, "
                             f"{len(data)} bytes (expected {desc.get('size')})")
    return data


def _platform_manifest(tar: tarfile.TarFile, desc: dict) -> dict | None:
    """Follow an index / manifest list down to the manifest for this machine."""
    if desc.get("mediaType") not in (MT_INDEX, MT_DOCKER_LIST):
        return desc
    index = json.loads(_verified_blob(tar, desc))
    for m in index.get("manifests", []):
        plat = m.get("platform") or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture", _arch()) == _arch():
            return _platform_manifest(tar, m)
    return None


def _docker_tags(tar: tarfile.TarFile) -> dict[str, list[str]]:
    """config digest hex -> RepoTags, from a manifest.json beside the OCI layout
    (docker 25+ writes both; its index.json may carry only the bare tag)."""
    try:
        entries = json.loads(_read(tar, "manifest.json"))
    except ImageError:
        return {}
    return {e["Config"].rsplit("/", 1)[-1].removesuffix(".json"): e.get("RepoTags") or [] for e in entries}


def _layer_blob(tar: tarfile.TarFile, store: ImageStore, digest: str, present: frozenset[str]):
    """The layer's blob: from the archive, else (a layer the sender was told this store has)
    from the store."""
    name = "blobs/" + digest.replace(":", "/")
    try:
        member = _member(tar, name)
    except ImageError:
        if digest not in present:
            raise
        try:
            return open(store.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"archive has no entry {name!r}, and the store no longer has {digest}") from None
    f = tar.extractfile(member)
    if f is None:
        raise ImageError(f"blob {digest} is not a file")
    return f


def _load_oci(*, store: ImageStore, tar: tarfile.TarFile,
              present: frozenset[str] = frozenset()) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    docker_tags = _docker_tags(tar)
    index = json.loads(_read(tar, "index.json"))
    for top in index.get("manifests", []):
        annotations = top.get("annotations") or {}
        desc = _platform_manifest(tar, top)
        if desc is None:
            raise ImageError(f"{top['digest']}: no manifest for linux/{_arch()}")
        manifest_bytes = _verified_blob(tar, desc)
        manifest = json.loads(manifest_bytes)
        config_bytes = _verified_blob(tar, manifest["config"])
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
        layers: list[Layer] = []
        for ldesc, diff_id in zip(manifest["layers"], diff_ids):
            with _layer_blob(tar, store, ldesc["digest"], present) as f:
                layers.append(store.add_layer_from_tar(fileobj=f, expected_digest=ldesc["digest"],
                                                       expected_diff_id=diff_id,
                                                       media_type=ldesc["mediaType"],
                                                       size=ldesc.get("size")))
        ref = annotations.get(CONTAINERD_NAME) or annotations.get(REF_ANNOTATION) or ""
        refs = []
        if ref and (":" in ref or "/" in ref or "@" in ref):
            refs = [str(parse_reference(ref))]
        else:
            refs = [str(parse_reference(t)) for t in
                    docker_tags.get(manifest["config"]["digest"].removeprefix("sha256:"), [])]
        image_id = store.commit_raw(config_bytes=config_bytes, layers=layers, refs=refs,
                                    manifest_bytes=manifest_bytes, manifest_digest=desc["digest"])
        out += [(parse_reference(r).familiar(), image_id) for r in refs] or [(None, image_id)]
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    tar.addfile(ti, io.BytesIO(data))


def save_archive(*, store: ImageStore, refs: tuple[str, ...], path: Path,
                 progress: Progress | None = None, leave_out: frozenset[str] = frozenset()) -> None:
    """Write the images as one tar (OCI layout + docker manifest.json); atomic.
    `progress` gets the bytes written of about the total (the blobs' sizes). The layer blobs
    in `leave_out` are not written (for a store that has them: `load_archive`'s `present`)."""
    index_entries, docker_entries, blobs = [], [], []
    for ref in refs:
        digest, manifest, _config = store.manifest(ref)
        try:
            parsed = parse_reference(ref)
            full = str(parsed) if not ref.startswith("sha256:") else ""
        except ImageError:
            full = ""
        entry = {"mediaType": MT_MANIFEST, "digest": digest,
                 "size": store.blob_path(digest).stat().st_size}
        if full and not parsed.digest:
            entry["annotations"] = {CONTAINERD_NAME: full, REF_ANNOTATION: parsed.tag or "latest"}
        index_entries.append(entry)
        docker_entries.append({
            "Config": "blobs/" + manifest["config"]["digest"].replace(":", "/"),
            "RepoTags": [parsed.familiar()] if full and not parsed.digest else [],
            "Layers": ["blobs/" + l["digest"].replace(":", "/") for l in manifest["layers"]],
        })
        blobs += [digest, manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]
                                                           if l["digest"] not in leave_out]
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".skiff-save-")
    try:
        total = sum(store.blob_path(d).stat().st_size for d in set(blobs))
        with os.fdopen(fd, "wb") as raw, tarfile.open(
                fileobj=_metered(raw, progress=progress, stage=f"writing {path.name}", total=total),
                mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            seen: set[str] = set()
            for d in blobs:
                if d in seen:
                    continue
                seen.add(d)
                tar.add(str(store.blob_path(d)), arcname="blobs/" + d.replace(":", "/"))
            _add_bytes(tar, "index.json", json.dumps(
                {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index_entries}).encode())
            _add_bytes(tar, "manifest.json", json.dumps(docker_entries).encode())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def import_rootfs(*, store: ImageStore, tarball: Path, ref: str,
                  changes: tuple[str, ...] = (), progress: Progress | None = None) -> str:
    """`docker import`: the tarball becomes a one-layer image; `changes` are
    Dockerfile instructions (CMD, ENV, ...) applied to its config. `progress`
    gets the bytes of the tarball read."""
    from agent.images.imageconfig import apply_changes
    config = apply_changes(config={"config": {}}, changes=changes)
    parse_reference(ref)  # refuse a bad name before the work
    try:
        f = open(tarball, "rb")
    except OSError as exc:
        raise ImageError(f"{tarball}: {exc.strerror}") from exc
    with f:
        size = os.fstat(f.fileno()).st_size
        layer = store.add_layer_from_tar(
            fileobj=_metered(f, progress=progress, stage=f"importing {tarball.name}", total=size))
    config["history"] = [{"created_by": f"skiff image import {tarball.name}"}]
    return store.commit_image(config=config, layers=[layer], ref=ref)
