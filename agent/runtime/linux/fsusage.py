"""Disk usage of a container's writable layer, for cAdvisor's
container_fs_usage_bytes / container_fs_inodes_total (kubelet's fsHandler
measures the same with du): allocated blocks, not apparent sizes, each inode
counted once, never crossing into another filesystem."""
from __future__ import annotations

import os
from pathlib import Path


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes allocated, inodes) under `path`; (0, 0) if it is gone."""
    try:
        root = os.lstat(path)
    except OSError:
        return 0, 0
    seen: set[int] = set()
    used, inodes = root.st_blocks * 512, 1
    stack = [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue   # removed meanwhile, or unreadable
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != root.st_dev:
                continue
            if st.st_nlink > 1:
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
            used += st.st_blocks * 512
            inodes += 1
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return used, inodes
