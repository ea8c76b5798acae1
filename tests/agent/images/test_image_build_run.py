"""RUN in Skiff's own runtime (agent.runtime.linux): output streamed, the
upper dir's diff (including deletions) becomes the layer, and a failing RUN
shows its output and exit code and leaves no container, mount or cgroup."""
from __future__ import annotations

import glob
import io
import os
import stat

import pytest

from agent.images.bootstrap import bootstrap_busybox
from agent.images.builder import BuildError, BuildOptions, build
from tests.conftest import remove_cgroup_parent

pytestmark = pytest.mark.root


def leftovers() -> list[str]:
    found = [line for line in open("/proc/self/mountinfo") if "skiff-build" in line]
    # A build's RUN containers live under a cgroup parent of the build's own.
    found += glob.glob("/sys/fs/cgroup/*/skiff-build-*") + glob.glob("/sys/fs/cgroup/skiff-build-*")
    found += glob.glob("/sys/fs/cgroup/*/skiff/pod-skiff-build-*")
    found += glob.glob("/tmp/skiff-build-run-*")
    return found


def test_run_layer_and_streamed_output(store, tmp_dir):
    bootstrap_busybox(store=store)
    before = leftovers()
    (tmp_dir / "Dockerfile").write_text(
        "FROM busybox\nENV GREETING=hello\n"
        "RUN echo \"$GREETING from $(hostname)\"; echo made > /made.txt; rm /etc/group; id -u\n"
        "USER nobody\nRUN id -u\n")
    out = io.StringIO()
    build(store=store, options=BuildOptions(context=tmp_dir, tags=("ran:1",)), out=out)
    text = out.getvalue()
    assert "hello from buildkitsandbox" in text
    assert "\n0\n" in text and "\n65534\n" in text
    img = store.resolve("ran:1")
    top = img.lower_dirs[1]
    assert (top / "made.txt").read_text() == "made\n"
    st = os.lstat(top / "etc/group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0      # the deletion, as a whiteout
    assert not (top / "etc/hosts").exists()                   # runtime mount targets stripped
    assert leftovers() == before


def test_failing_run_shows_output_and_code_and_leaves_nothing(store, tmp_dir):
    bootstrap_busybox(store=store)
    before = leftovers()
    (tmp_dir / "Dockerfile").write_text("FROM busybox\nRUN echo partial output; exit 42\n")
    out = io.StringIO()
    with pytest.raises(BuildError) as err:
        build(store=store, options=BuildOptions(context=tmp_dir, tags=("bad:1",)), out=out)
    assert "partial output" in out.getvalue()
    assert str(err.value).startswith("Dockerfile:2: RUN: ")
    assert str(err.value).endswith("returned a non-zero code: 42")
    assert store.resolve("bad:1") is None
    assert leftovers() == before
    assert not any(store.tmp.iterdir())


def test_run_network_none_has_only_loopback(store, tmp_dir):
    bootstrap_busybox(store=store)
    (tmp_dir / "Dockerfile").write_text("FROM busybox\nRUN ls /sys/class/net > /ifaces\n")
    build(store=store, options=BuildOptions(context=tmp_dir, tags=("net:1",), network="none"),
          out=io.StringIO())
    top = store.resolve("net:1").lower_dirs[-1]
    assert (top / "ifaces").read_text().split() == ["lo"]


def test_prune_keeps_layers_a_running_container_uses(store, tmp_dir):
    import asyncio
    from agent.runtime.interface import ContainerConfig, SandboxConfig
    from agent.runtime.linux import LinuxRuntime

    bootstrap_busybox(store=store)
    img = store.resolve("busybox")

    async def scenario() -> tuple[int, bool, int]:
        pod = "skiff-test-prune-" + os.urandom(4).hex()
        runtime = LinuxRuntime(run_dir=tmp_dir / "run", cgroup_parent=pod)
        try:
            await runtime.create_sandbox(SandboxConfig(pod_id=pod, namespace="default", name="p",
                                                       hostname="p"))
            await runtime.start(ContainerConfig(
                id=pod + "-c", pod_id=pod, name="c", image="busybox", image_id=img.id,
                lower_dirs=img.lower_dirs, args=("sleep", "60")))
            store.remove("busybox")
            while_running = store.prune()
            kept = img.lower_dirs[0].exists()
        finally:
            await runtime.remove(pod + "-c")
            await runtime.remove_sandbox(pod)
            runtime.close()
            remove_cgroup_parent(pod)
        return while_running.layers, kept, store.prune().layers

    pruned_running, kept, pruned_after = asyncio.run(scenario())
    assert (pruned_running, kept, pruned_after) == (0, True, 1)
    assert not img.lower_dirs[0].exists()


def test_run_heredoc_script(store, tmp_dir):
    bootstrap_busybox(store=store)
    (tmp_dir / "Dockerfile").write_text(
        "FROM busybox\nRUN <<EOF\nset -e\necho one > /one\ncat <<INNER > /two\ntwo\nINNER\nEOF\n")
    build(store=store, options=BuildOptions(context=tmp_dir, tags=("hd:1",)), out=io.StringIO())
    top = store.resolve("hd:1").lower_dirs[-1]
    assert (top / "one").read_text() == "one\n" and (top / "two").read_text() == "two\n"
