"""Layer unpacking: normal content, OCI whiteouts, and hostile tars — each
rejected with an error naming the entry and nothing left in the store."""
from __future__ import annotations

import hashlib
import io
import os
import stat

import pytest

from agent.images.errors import DigestMismatch, LayerError
from agent.images.layers import write_layer_tar

from .conftest import make_tar, store_is_empty

pytestmark = pytest.mark.root  # chown, mknod 0/0 and trusted.* xattrs need root


def test_regular_layer_unpacks_with_owners_modes_links(store):
    data = make_tar([
        {"name": "etc", "type": "dir"},
        {"name": "etc/motd", "data": b"hello\n", "mode": 0o640, "uid": 1000, "gid": 1001},
        {"name": "etc/motd2", "type": "hardlink", "link": "etc/motd"},
        {"name": "bin/sh", "type": "symlink", "link": "/bin/busybox"},
        {"name": "rel", "type": "symlink", "link": "etc/motd"},
        {"name": "pipe", "type": "fifo"},
    ])
    layer = store.add_layer_from_tar(fileobj=io.BytesIO(data))
    root = store.layer_dir(layer.diff_id)
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.digest == layer.diff_id  # stored uncompressed
    st = os.stat(root / "etc/motd")
    assert (root / "etc/motd").read_bytes() == b"hello\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1000, 1001)
    assert os.stat(root / "etc/motd2").st_ino == st.st_ino
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)
    assert store.blob_path(layer.digest).read_bytes() == data
    assert not any(store.tmp.iterdir())


def test_gzip_layer_digest_and_diff_id_differ(store):
    data = make_tar([{"name": "a", "data": b"x"}], gzip=True)
    layer = store.add_layer_from_tar(fileobj=io.BytesIO(data))
    assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.diff_id != layer.digest
    assert layer.media_type.endswith("tar+gzip")
    assert (store.layer_dir(layer.diff_id) / "a").read_bytes() == b"x"


def test_whiteouts_become_overlay_whiteouts(store):
    data = make_tar([
        {"name": "etc", "type": "dir"},
        {"name": "etc/.wh.passwd"},
        {"name": "var", "type": "dir"},
        {"name": "var/.wh..wh..opq"},
        {"name": "var/new", "data": b"n"},
    ])
    root = store.layer_dir(store.add_layer_from_tar(fileobj=io.BytesIO(data)).diff_id)
    st = os.lstat(root / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (root / "etc/.wh.passwd").exists()
    assert os.getxattr(root / "var", "trusted.overlay.opaque") == b"y"
    assert not (root / "var/.wh..wh..opq").exists()
    assert (root / "var/new").read_bytes() == b"n"


def test_write_layer_tar_round_trips_whiteouts(store, tmp_dir):
    src = tmp_dir / "upper"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_text("f")
    os.mknod(src / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (src / "opq").mkdir()
    os.setxattr(src / "opq", "trusted.overlay.opaque", b"y")
    buf = io.BytesIO()
    write_layer_tar(src=src, out=buf)
    import tarfile
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert ".wh.gone" in names and "opq/.wh..wh..opq" in names and "d/f" in names
    root = store.layer_dir(store.add_layer_from_tar(fileobj=io.BytesIO(buf.getvalue())).diff_id)
    assert stat.S_ISCHR(os.lstat(root / "gone").st_mode)
    assert os.getxattr(root / "opq", "trusted.overlay.opaque") == b"y"


HOSTILE = {
    "dotdot": ([{"name": "../escape", "data": b"x"}], "'..'"),
    "dotdot-inner": ([{"name": "a/../../escape", "data": b"x"}], "'..'"),
    "absolute": ([{"name": "/etc/evil", "data": b"x"}], "absolute"),
    "symlink-escape": ([{"name": "link", "type": "symlink", "link": "../../../etc"}], "escapes"),
    "write-through-symlink": ([{"name": "link", "type": "symlink", "link": "/etc"},
                               {"name": "link/passwd", "data": b"x"}], "symlink"),
    "hardlink-escape": ([{"name": "h", "type": "hardlink", "link": "../../etc/shadow"}], "hardlink"),
    "hardlink-absolute": ([{"name": "h", "type": "hardlink", "link": "/etc/shadow"}], "hardlink"),
    "hardlink-through-symlink": ([{"name": "l", "type": "symlink", "link": "/etc"},
                                  {"name": "h", "type": "hardlink", "link": "l/shadow"}], "symlink"),
    "char-device": ([{"name": "dev/mem", "type": "chr"}], "device"),
    "block-device": ([{"name": "sda", "type": "blk"}], "device"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_rejected_and_nothing_left(store, case):
    entries, words = HOSTILE[case]
    data = make_tar([{"name": "ok", "data": b"fine"}, *entries])
    with pytest.raises(LayerError) as err:
        store.add_layer_from_tar(fileobj=io.BytesIO(data))
    bad = entries[-1]["name"]
    assert repr(bad) in str(err.value) and words in str(err.value)
    assert store_is_empty(store)
    assert not os.path.exists("/etc/evil") and not os.path.exists("/escape")


def test_digest_mismatch_rejected_and_nothing_left(store):
    data = make_tar([{"name": "a", "data": b"x"}])
    with pytest.raises(DigestMismatch) as err:
        store.add_layer_from_tar(fileobj=io.BytesIO(data), expected_digest="sha256:" + "0" * 64)
    assert "sha256:" + "0" * 64 in str(err.value)
    assert store_is_empty(store)


def test_diff_id_mismatch_rejected_and_nothing_left(store):
    data = make_tar([{"name": "a", "data": b"x"}], gzip=True)
    with pytest.raises(DigestMismatch):
        store.add_layer_from_tar(fileobj=io.BytesIO(data), expected_diff_id="sha256:" + "1" * 64)
    assert store_is_empty(store)


@pytest.mark.parametrize("gzip", [False, True])
def test_truncated_blob_rejected_and_nothing_left(store, gzip):
    data = make_tar([{"name": "big", "data": os.urandom(50000)}], gzip=gzip)
    cut = data[: len(data) // 2]
    with pytest.raises(LayerError) as err:
        store.add_layer_from_tar(fileobj=io.BytesIO(cut))
    assert "truncated" in str(err.value) or "corrupt" in str(err.value)
    assert store_is_empty(store)


def test_announced_size_mismatch_is_truncation(store):
    data = make_tar([{"name": "a", "data": b"x"}])
    with pytest.raises(DigestMismatch) as err:
        store.add_layer_from_tar(fileobj=io.BytesIO(data[:-512]), size=len(data))
    assert "truncated" in str(err.value)
    assert store_is_empty(store)
