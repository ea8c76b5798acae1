"""load / save / import: a `docker save` archive built here byte by byte, an
OCI layout archive, round trips through save, and hostile archives."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from agent.images.archive import import_rootfs, load_archive, save_archive
from agent.images.errors import DigestMismatch, ImageError, LayerError
from agent.images.store import ImageStore

from .conftest import make_tar, store_is_empty

pytestmark = pytest.mark.root


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tar.addfile(ti, io.BytesIO(data))


def docker_save_archive(path, *, layers: list[bytes], tags: list[str], config_extra=None,
                        diff_ids=None) -> str:
    """What `docker save` (before 25) writes: <id>.json, <dir>/layer.tar, manifest.json."""
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05.123456789Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], **(config_extra or {})},
              "rootfs": {"type": "layers", "diff_ids": diff_ids or
                         ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]}}
    config_bytes = json.dumps(config).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    with tarfile.open(path, "w") as tar:
        _add(tar, f"{image_id}.json", config_bytes)
        names = []
        for i, layer in enumerate(layers):
            _add(tar, f"layer{i}/layer.tar", layer)
            _add(tar, f"layer{i}/VERSION", b"1.0")
            names.append(f"layer{i}/layer.tar")
        _add(tar, "manifest.json", json.dumps(
            [{"Config": f"{image_id}.json", "RepoTags": tags, "Layers": names}]).encode())
        _add(tar, "repositories", b"{}")
    return "sha256:" + image_id


def test_load_docker_save_archive(store, tmp_dir):
    l1 = make_tar([{"name": "bin", "type": "dir"}, {"name": "bin/tool", "data": b"#!/bin/sh\n", "mode": 0o755}])
    l2 = make_tar([{"name": "bin/.wh.tool"}, {"name": "app.txt", "data": b"app"}])
    path = tmp_dir / "img.tar"
    image_id = docker_save_archive(path, layers=[l1, l2], tags=["myapp:1.0", "quay.io/x/myapp:1"])
    loaded = load_archive(store=store, path=path)
    assert loaded == [("myapp:1.0", image_id), ("quay.io/x/myapp:1", image_id)]
    img = store.resolve("myapp:1.0")
    assert img.id == image_id          # the image id is docker's: sha256 of the config bytes
    assert img.config.cmd == ("sh",)
    assert (img.lower_dirs[0] / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert (img.lower_dirs[1] / "app.txt").read_bytes() == b"app"
    rows = store.list()
    assert {(r.repository, r.tag) for r in rows} == {("myapp", "1.0"), ("quay.io/x/myapp", "1")}
    assert rows[0].created_ts > 0


def test_docker_save_with_wrong_diff_id_is_rejected(store, tmp_dir):
    l1 = make_tar([{"name": "a", "data": b"a"}])
    path = tmp_dir / "bad.tar"
    docker_save_archive(path, layers=[l1], tags=["bad:1"], diff_ids=["sha256:" + "2" * 64])
    with pytest.raises(DigestMismatch) as err:
        load_archive(store=store, path=path)
    assert "layer0/layer.tar" in str(err.value)
    assert store_is_empty(store) and store.list() == []


def test_docker_save_with_hostile_layer_is_rejected(store, tmp_dir):
    path = tmp_dir / "evil.tar"
    docker_save_archive(path, layers=[make_tar([{"name": "../../x", "data": b"x"}])], tags=["evil:1"])
    with pytest.raises(LayerError):
        load_archive(store=store, path=path)
    assert store_is_empty(store)


def test_save_then_load_round_trip_oci_and_docker_views(store, tmp_dir):
    from agent.images.bootstrap import bootstrap_busybox
    bootstrap_busybox(store=store)
    store.tag("busybox", "other:2")
    out = tmp_dir / "out.tar"
    save_archive(store=store, refs=("busybox", "other:2"), path=out)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert [m["RepoTags"] for m in manifest] == [["busybox:latest"], ["other:2"]]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == \
        "docker.io/library/busybox:latest"
    fresh = ImageStore(root=tmp_dir / "fresh")
    loaded = load_archive(store=fresh, path=out)
    original = store.resolve("busybox")
    assert loaded == [("busybox:latest", original.id), ("other:2", original.id)]
    again = fresh.resolve("busybox")
    assert again.id == original.id
    assert (again.lower_dirs[0] / "bin/busybox").read_bytes() == \
        (original.lower_dirs[0] / "bin/busybox").read_bytes()


def test_oci_archive_with_corrupt_blob_is_rejected(store, tmp_dir):
    from agent.images.bootstrap import bootstrap_busybox
    bootstrap_busybox(store=store)
    good = tmp_dir / "good.tar"
    save_archive(store=store, refs=("busybox",), path=good)
    # Rewrite the archive with one byte of the layer blob flipped; drop docker's
    # manifest.json so the OCI path is the one taken.
    layer_digest = store.resolve("busybox").lower_dirs[0].name
    bad = tmp_dir / "bad.tar"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            if m.name == "manifest.json":
                continue
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == f"blobs/sha256/{layer_digest}":
                data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    fresh = ImageStore(root=tmp_dir / "fresh")
    with pytest.raises(DigestMismatch):
        load_archive(store=fresh, path=bad)
    assert not any(fresh.layers.iterdir()) or all(p.name.endswith(".lock") for p in fresh.layers.iterdir())
    assert fresh.list() == []


def test_load_rejects_unknown_archive(store, tmp_dir):
    path = tmp_dir / "x.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "hello", b"x")
    with pytest.raises(ImageError) as err:
        load_archive(store=store, path=path)
    assert "neither an OCI layout" in str(err.value)


def test_import_rootfs_with_changes(store, tmp_dir):
    path = tmp_dir / "rootfs.tar.gz"
    path.write_bytes(make_tar([{"name": "./etc/os-release", "data": b"ID=test\n"}], gzip=True))
    image_id = import_rootfs(store=store, tarball=path, ref="imported:v1",
                             changes=('CMD ["/bin/sh"]', "ENV A=1", "EXPOSE 8080", "WORKDIR /srv"))
    img = store.resolve("imported:v1")
    assert img.id == image_id
    assert (img.lower_dirs[0] / "etc/os-release").read_text() == "ID=test\n"
    assert img.config.cmd == ("/bin/sh",) and img.config.env == ("A=1",)
    assert img.config.exposed_ports == ("8080/tcp",) and img.config.working_dir == "/srv"
    with pytest.raises(ImageError):
        import_rootfs(store=store, tarball=path, ref="x:1", changes=("RUN echo no",))


def test_oci_archive_with_bare_tag_takes_names_from_manifest_json(store, tmp_dir):
    """docker 25+ `docker save`: index.json names only the tag; manifest.json has RepoTags."""
    from agent.images.bootstrap import bootstrap_busybox
    bootstrap_busybox(store=store)
    good = tmp_dir / "good.tar"
    save_archive(store=store, refs=("busybox",), path=good)
    bare = tmp_dir / "bare.tar"
    with tarfile.open(good) as src, tarfile.open(bare, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == "index.json":
                index = json.loads(data)
                index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
                data = json.dumps(index).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    fresh = ImageStore(root=tmp_dir / "fresh")
    assert load_archive(store=fresh, path=bare) == [("busybox:latest", store.resolve("busybox").id)]
