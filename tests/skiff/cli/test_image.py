"""`skiff image ...` driven as a user runs it (the real command, a private --data-dir)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.root   # the store unpacks layers with their owners


@pytest.fixture
def data_dir():
    d = Path(tempfile.mkdtemp(prefix="skiff-test-cli-image-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def skiff(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "--data-dir", str(data_dir),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_bootstrap_ls_tag_inspect_rm_prune(data_dir):
    r = skiff(data_dir, "bootstrap", "busybox")
    assert r.returncode == 0 and r.stdout.strip() == "busybox:latest", r.stderr
    layers = os.listdir(data_dir / "images/layers")
    again = skiff(data_dir, "bootstrap", "busybox")     # cached: nothing new
    assert again.returncode == 0 and os.listdir(data_dir / "images/layers") == layers
    assert skiff(data_dir, "tag", "busybox", "localhost:5000/tools/bb:v2").returncode == 0
    ls = skiff(data_dir, "ls")
    lines = ls.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = sorted(tuple(l.split()[:3]) for l in lines[1:])
    image_id = rows[0][2]
    assert rows == [("busybox", "latest", image_id), ("localhost:5000/tools/bb", "v2", image_id)]
    assert len(image_id) == 12
    assert skiff(data_dir, "ls", "-q").stdout.split() == [image_id]
    info = json.loads(skiff(data_dir, "inspect", "busybox").stdout)[0]
    assert info["Id"].startswith("sha256:" + image_id) and info["Config"]["Cmd"] == ["sh"]
    assert sorted(info["RepoTags"]) == ["busybox:latest", "localhost:5000/tools/bb:v2"]
    rm = skiff(data_dir, "rm", "busybox")
    assert rm.stdout.splitlines() == ["Untagged: busybox:latest"]
    rm = skiff(data_dir, "rm", "localhost:5000/tools/bb:v2")
    assert rm.stdout.splitlines()[0] == "Untagged: localhost:5000/tools/bb:v2"
    assert rm.stdout.splitlines()[1].startswith("Deleted: sha256:" + image_id)
    pr = skiff(data_dir, "prune")
    assert pr.returncode == 0 and "1 layer(s)" in pr.stdout
    assert [p for p in os.listdir(data_dir / "images/layers") if not p.endswith(".lock")] == []


def test_errors_are_one_line_and_exit_1(data_dir):
    for args, message in ((("rm", "nosuch"), "error: no such image: nosuch:latest"),
                          (("inspect", "Bad:Ref"), "error: invalid reference format"),
                          (("load", "-i", str(data_dir / "missing.tar")), "error: "),
                          (("tag", "nosuch", "x:1"), "error: no such image")):
        r = skiff(data_dir, *args)
        assert r.returncode == 1 and r.stderr.startswith(message), r.stderr
        assert "Traceback" not in r.stderr


def test_save_load_import(data_dir):
    assert skiff(data_dir, "bootstrap", "busybox").returncode == 0
    archive = data_dir / "bb.tar"
    r = skiff(data_dir, "save", "-o", str(archive), "busybox")
    assert r.returncode == 0, r.stderr
    other = data_dir / "other"
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "load", "-i", str(archive),
                        "--data-dir", str(other)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "Loaded image: busybox:latest", r.stderr
    rootfs = data_dir / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 2
        tar.addfile(ti, io.BytesIO(b"hi"))
    r = skiff(data_dir, "import", "--change", 'CMD ["/hello"]', str(rootfs), "imported:1")
    assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
    info = json.loads(skiff(data_dir, "inspect", "imported:1").stdout)[0]
    assert info["Config"]["Cmd"] == ["/hello"] and len(info["RootFS"]["diff_ids"]) == 1


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="apt-get install docker-registry")
def test_push_and_pull_through_a_local_registry(data_dir):
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg_dir = data_dir / "registry"
    reg_dir.mkdir()
    (reg_dir / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(reg_dir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"}}))
    proc = subprocess.Popen([shutil.which("docker-registry"), "serve", str(reg_dir / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        assert skiff(data_dir, "bootstrap", "busybox").returncode == 0
        ref = f"127.0.0.1:{port}/tools/busybox:1"
        assert skiff(data_dir, "tag", "busybox", ref).returncode == 0
        r = skiff(data_dir, "push", ref)
        assert r.returncode == 0 and "Pushed" in r.stdout and "digest: sha256:" in r.stdout, r.stderr
        other = data_dir / "other"
        r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "pull", ref,
                            "--data-dir", str(other)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0 and "Pull complete" in r.stdout and "Digest: sha256:" in r.stdout, r.stderr
        r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "pull", f"127.0.0.1:{port}/nope:1",
                            "--data-dir", str(other)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.startswith("error: ") and "not found" in r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_progress_on_a_pipe_and_quiet(data_dir):
    assert skiff(data_dir, "bootstrap", "busybox").returncode == 0
    archive = data_dir / "bb.tar"
    # Work shorter than the interval (3 s) prints what it always printed: nothing.
    r = skiff(data_dir, "save", "-o", str(archive), "busybox")
    assert r.returncode == 0 and (r.stdout, r.stderr) == ("", "")
    # With lines due at every step, the pipe gets plain lines: where the work is, of how much.
    env = dict(os.environ, SKIFF_PROGRESS_INTERVAL="0")
    run = lambda *args: subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "--data-dir",
                                        str(data_dir), *args], cwd=ROOT, env=env, capture_output=True,
                                       text=True, timeout=120)
    r = run("save", "-o", str(archive), "busybox")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(ln.startswith("writing bb.tar, ") and "\r" not in ln for ln in lines), lines
    assert " of " in lines[-1]
    r = run("load", "-i", str(archive))
    assert r.stdout == "Loaded image: busybox:latest\n" and r.stderr.splitlines()[-1].startswith(
        "loading bb.tar, "), r.stderr
    size = archive.stat().st_size
    assert any(f"of {size / 1e6:.1f} MB" in ln for ln in r.stderr.splitlines()), r.stderr
    r = run("import", str(archive), "imported:1")
    assert r.stdout.startswith("sha256:") and r.stderr.splitlines()[0].startswith("importing bb.tar, ")
    for args in (("save", "-o", str(archive), "busybox"), ("load", "-i", str(archive)),
                 ("import", str(archive), "imported:2")):
        r = run(*args, "--quiet")
        assert r.returncode == 0 and r.stderr == "", r.stderr


def test_progress_on_a_terminal_is_one_live_line(data_dir):
    import pty

    assert skiff(data_dir, "bootstrap", "busybox").returncode == 0
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "skiff.cli.main", "image", "--data-dir", str(data_dir),
                                 "save", "-o", str(data_dir / "bb.tar"), "busybox"], cwd=ROOT,
                                stdin=secondary, stdout=secondary, stderr=secondary)
        os.close(secondary)
        out = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:   # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
    text = out.decode()
    assert text.startswith("\rwriting bb.tar, 0 B of ") and text.endswith("\r\x1b[K"), repr(text)
    assert "\n" not in text   # rewritten in place, then cleared
