"""The image store: commit/resolve round trips, tags, removal, prune, and two
processes unpacking the same layer at once."""
from __future__ import annotations

import io
import json
import multiprocessing
import os

import pytest

from agent.images.errors import ImageNotFound
from agent.images.store import ImageStore

from .conftest import make_tar

pytestmark = pytest.mark.root  # unpacking sets owners (lchown)


def _image(store, *, ref="app:1", files=(("a", b"1"),), config=None):
    layer = store.add_layer_from_tar(fileobj=io.BytesIO(make_tar(
        [{"name": n, "data": d} for n, d in files])))
    cfg = {"config": {"Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": ["/init"], "WorkingDir": "/w",
                      "User": "1:2", "ExposedPorts": {"5000/tcp": {}}, "Labels": {"k": "v"},
                      "StopSignal": "SIGINT", "Volumes": {"/data": {}}}} if config is None else config
    return store.commit_image(config=cfg, layers=[layer], ref=ref), layer


def test_commit_and_resolve_round_trip(store):
    base = store.add_layer_from_tar(fileobj=io.BytesIO(make_tar([{"name": "base", "data": b"b"}])))
    image_id, top = _image(store)
    store.commit_image(config={"config": {}}, layers=[base, top], ref="two:layers")
    img = store.resolve("app:1")
    assert img.id == image_id and img.reference == "docker.io/library/app:1"
    assert img.config.env == ("A=1",) and img.config.cmd == ("sh",)
    assert img.config.entrypoint == ("/init",) and img.config.working_dir == "/w"
    assert img.config.user == "1:2" and img.config.exposed_ports == ("5000/tcp",)
    assert img.config.labels == {"k": "v"} and img.config.stop_signal == "SIGINT"
    assert img.config.volumes == ("/data",)
    assert (img.lower_dirs[0] / "a").read_bytes() == b"1"
    two = store.resolve("docker.io/library/two:layers")
    assert [(d / n).exists() for d, n in zip(two.lower_dirs, ("base", "a"))] == [True, True]
    # The layout is a real OCI image layout.
    assert json.loads((store.root / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    index = json.loads((store.root / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert names == {"docker.io/library/app:1", "docker.io/library/two:layers"}


def test_resolve_by_id_prefix_and_digest(store):
    image_id, _ = _image(store)
    hexid = image_id.removeprefix("sha256:")
    assert store.resolve(hexid[:12]).id == image_id
    assert store.resolve(image_id).id == image_id
    digest = store.list()[0].manifest_digest
    assert store.resolve(f"app@{digest}").id == image_id
    assert store.resolve("nosuch") is None
    assert store.resolve("app:2") is None


def test_unpacked_layer_shared_between_images(store):
    _, l1 = _image(store, ref="a:1")
    _, l2 = _image(store, ref="b:1", config={"config": {"Cmd": ["other"]}})
    assert l1.diff_id == l2.diff_id
    assert store.resolve("a:1").lower_dirs == store.resolve("b:1").lower_dirs
    assert len([p for p in store.layers.iterdir() if p.is_dir()]) == 1


def test_list_tag_remove_prune(store):
    image_id, layer = _image(store)
    store.tag("app:1", "registry.example:5000/team/app:prod")
    rows = {(r.repository, r.tag): r for r in store.list()}
    assert set(rows) == {("app", "1"), ("registry.example:5000/team/app", "prod")}
    assert {r.image_id for r in rows.values()} == {image_id}
    assert store.inspect("app:1")["RepoTags"] == ["app:1", "registry.example:5000/team/app:prod"]
    assert store.remove("app:1") == ["Untagged: app:1"]
    assert store.prune().layers == 0          # still tagged elsewhere
    assert store.resolve("registry.example:5000/team/app:prod").id == image_id
    out = store.remove("registry.example:5000/team/app:prod")
    assert out[0] == "Untagged: registry.example:5000/team/app:prod" and out[1].startswith("Deleted: ")
    assert store.list() == []
    result = store.prune()
    assert result.layers == 1 and result.blobs == 3   # layer, config, manifest
    assert not any(store.blobs.iterdir())
    assert not store.layer_dir(layer.diff_id).exists()
    with pytest.raises(ImageNotFound):
        store.inspect("app:1")


def test_retag_moves_the_tag(store):
    first, _ = _image(store, ref="app:1")
    second, _ = _image(store, ref="app:1", config={"config": {"Cmd": ["new"]}})
    assert first != second
    assert [r.image_id for r in store.list()] == [second]
    assert store.resolve("app:1").config.cmd == ("new",)


def test_missing_unpacked_layer_is_restored_from_blob(store):
    import shutil
    _, layer = _image(store)
    shutil.rmtree(store.layer_dir(layer.diff_id))
    img = store.resolve("app:1")
    assert (img.lower_dirs[0] / "a").read_bytes() == b"1"


def _unpack(root: str, data: bytes, barrier, results) -> None:
    store = ImageStore(root=root)
    barrier.wait()
    results.put(store.add_layer_from_tar(fileobj=io.BytesIO(data)).diff_id)


def test_two_processes_unpack_same_layer(store):
    data = make_tar([{"name": f"f{i}", "data": os.urandom(2000)} for i in range(200)])
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_unpack, args=(str(store.root), data, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        ids = {results.get(timeout=60) for _ in procs}
    finally:
        for p in procs:
            p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(ids) == 1
    diff_id = ids.pop()
    assert len(os.listdir(store.layer_dir(diff_id))) == 200
    assert [p.name for p in store.layers.iterdir() if p.is_dir()] == [diff_id.removeprefix("sha256:")]
    assert not any(store.tmp.iterdir())


def test_remove_by_digest_reference_untags_all(store):
    image_id, _ = _image(store, ref="app:1")
    store.tag("app:1", "app:2")
    digest = store.list()[0].manifest_digest
    out = store.remove(f"app@{digest}")
    assert sorted(out[:2]) == ["Untagged: app:1", "Untagged: app:2"] and out[2] == f"Deleted: {image_id}"
    assert store.list() == []
