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


def _two_layer_image(store, tmp_dir) -> tuple[str, str]:
    """busybox, and my-tool:v1 on it with one small layer: (busybox's layer digest, the new one's)."""
    from agent.images.bootstrap import bootstrap_busybox
    bootstrap_busybox(store=store)
    src = tmp_dir / "tool"
    (src / "usr/bin").mkdir(parents=True)
    (src / "usr/bin/tool").write_text("#!/bin/sh\necho tool\n")
    base = store.resolve("busybox")
    _, manifest, config = store.manifest("busybox")
    top = store.add_layer_from_dir(src=src)
    base_layer = store.manifest("busybox")[1]["layers"][0]
    from agent.images.store import Layer
    layers = [Layer(digest=base_layer["digest"], diff_id=config["rootfs"]["diff_ids"][0],
                    size=base_layer["size"], media_type=base_layer["mediaType"]), top]
    store.commit_image(config={"config": {"Cmd": ["tool"]}}, layers=layers, ref="my-tool:v1")
    assert base.id != store.resolve("my-tool:v1").id
    return base_layer["digest"], top.digest


def test_an_archive_leaves_out_the_layers_the_store_has_and_loads_them_from_there(store, tmp_dir):
    """`skiff image push`'s archive for a node that has the base layer: only the new one in it;
    the node's store fills the gap (also when the unpacked dir went and only the blob is left)."""
    base, top = _two_layer_image(store, tmp_dir)
    node = ImageStore(root=tmp_dir / "node")
    save_archive(store=store, refs=("busybox",), path=tmp_dir / "busybox.tar")
    load_archive(store=node, path=tmp_dir / "busybox.tar")   # the node has the base image
    out = tmp_dir / "push.tar"
    save_archive(store=store, refs=("my-tool:v1",), path=out, leave_out=frozenset({base}))
    with tarfile.open(out) as tar:
        blobs = {n.removeprefix("blobs/sha256/") for n in tar.getnames() if n.startswith("blobs/")}
    assert top.removeprefix("sha256:") in blobs and base.removeprefix("sha256:") not in blobs
    assert out.stat().st_size < 100_000 < store.blob_path(base).stat().st_size

    with pytest.raises(ImageError, match=f"archive has no entry 'blobs/sha256/{base[7:]}'"):
        load_archive(store=node, path=out)   # not named present: a hole is an error
    assert "my-tool:v1" not in {f"{r.repository}:{r.tag}" for r in node.list()}

    diff_id = store.manifest("busybox")[2]["rootfs"]["diff_ids"][0]
    import shutil
    shutil.rmtree(node.layer_dir(diff_id))   # the blob stays: the layer is unpacked from it again
    loaded = load_archive(store=node, path=out, present=frozenset({base}))
    assert loaded == [("my-tool:v1", store.resolve("my-tool:v1").id)]
    image = node.resolve("my-tool:v1")
    assert (image.lower_dirs[0] / "bin/busybox").exists()
    assert (image.lower_dirs[1] / "usr/bin/tool").read_text() == "#!/bin/sh\necho tool\n"


def test_a_layer_named_present_but_gone_from_the_store_is_an_error_that_names_it(store, tmp_dir):
    base, _ = _two_layer_image(store, tmp_dir)
    out = tmp_dir / "push.tar"
    save_archive(store=store, refs=("my-tool:v1",), path=out, leave_out=frozenset({base}))
    empty = ImageStore(root=tmp_dir / "empty")
    with pytest.raises(ImageError, match=f"the store no longer has {base}"):
        load_archive(store=empty, path=out, present=frozenset({base}))
    assert empty.list() == []


def test_the_node_names_only_the_layers_its_store_has_and_only_sha256_digests(store, tmp_dir):
    """The agent's answer to a push's first message (agent/imageservice.py): a name that is no
    sha256 digest is no layer (it never becomes a path), and a long list is cut."""
    from agent.imageservice import MAX_LAYERS, ImagesService
    base, top = _two_layer_image(store, tmp_dir)
    service = ImagesService(store=store, node_name="node-1")
    absent = "sha256:" + "0" * 64
    asked = [base, absent, "../../../etc/passwd", "sha256:../../layers", "", base.upper(), top]
    assert service.layers_present(asked) == {base, top}
    assert service.layers_present([absent] * MAX_LAYERS + [base]) == frozenset()
