"""The writable layer's size as container_fs_usage_bytes reports it:
allocated blocks, a hard-linked file once, a sparse file by what it holds."""
from __future__ import annotations

import os

from agent.runtime.linux.fsusage import disk_usage

MiB = 1 << 20


def test_counts_allocated_bytes_and_inodes_once(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "data").write_bytes(b"x" * MiB)
    os.link(upper / "etc" / "data", upper / "same")
    with open(upper / "sparse", "wb") as f:
        f.truncate(64 * MiB)
    used, inodes = disk_usage(upper)
    assert MiB <= used < 2 * MiB          # the hard link and the sparse file's hole add nothing
    assert inodes == 4                    # upper, etc, data (once), sparse


def test_a_missing_layer_is_empty(tmp_path):
    assert disk_usage(tmp_path / "gone") == (0, 0)
