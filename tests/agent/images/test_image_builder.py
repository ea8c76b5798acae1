"""The builder on real stores: RUN-less Dockerfiles (COPY/ADD, stages, config
instructions, .dockerignore, the cache) and, as root, RUN in Skiff's runtime."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from agent.images.bootstrap import bootstrap_busybox
from agent.images.builder import BuildError, BuildOptions, RunRequest, build
from agent.images.dockerfile import DockerfileError

pytestmark = pytest.mark.root  # layers carry owners (lchown), whiteouts need mknod


def write(ctx: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def run_build(store, ctx: Path, dockerfile: str, *, tag: str = "test:1", **kw):
    (ctx / "Dockerfile").write_text(dockerfile)
    out = io.StringIO()
    image_id = build(store=store, options=BuildOptions(context=ctx, tags=(tag,), **kw), out=out)
    return image_id, out.getvalue()


def rootfs_file(store, ref: str, path: str) -> Path | None:
    """The file a container of `ref` would see at `path` (top layer first)."""
    for d in reversed(store.resolve(ref).lower_dirs):
        p = d / path.lstrip("/")
        if os.path.lexists(p):
            return p
    return None


@pytest.fixture
def ctx(tmp_dir):
    d = tmp_dir / "ctx"
    d.mkdir()
    return d


def test_copy_config_and_cache(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"app.py": "print('v1')\n", "lib/util.py": "x = 1\n", "notes.md": "n"})
    dockerfile = ("FROM busybox\nENV APP_HOME=/srv/app\nWORKDIR $APP_HOME\nCOPY lib/ ./lib/\n"
                  "COPY app.py .\nLABEL version=1 \"who\"=me\nEXPOSE 5000\nUSER 1000:1000\n"
                  "STOPSIGNAL SIGINT\nVOLUME /data\nENTRYPOINT [\"python3\"]\nCMD [\"app.py\"]\n")
    first_id, out = run_build(store, ctx, dockerfile)
    assert "Step 1/12 : FROM busybox" in out and "Step 5/12 : COPY app.py ." in out
    assert "Using cache" not in out
    img = store.resolve("test:1")
    assert img.id == first_id
    c = img.config
    assert ("APP_HOME=/srv/app" in c.env and c.working_dir == "/srv/app" and c.user == "1000:1000"
            and c.exposed_ports == ("5000/tcp",) and c.labels == {"version": "1", "who": "me"}
            and c.stop_signal == "SIGINT" and c.volumes == ("/data",)
            and c.entrypoint == ("python3",) and c.cmd == ("app.py",))
    assert rootfs_file(store, "test:1", "/srv/app/app.py").read_text() == "print('v1')\n"
    assert rootfs_file(store, "test:1", "/srv/app/lib/util.py").read_text() == "x = 1\n"
    st = os.stat(rootfs_file(store, "test:1", "/srv/app/app.py"))
    assert (st.st_uid, st.st_gid) == (0, 0)

    # Unchanged: every layer from the cache, and the very same image.
    again_id, out = run_build(store, ctx, dockerfile)
    assert out.count("Using cache") == 3 and again_id == first_id

    # app.py changed: lib/ is still cached, app.py and what follows are rebuilt.
    (ctx / "app.py").write_text("print('v2')\n")
    third_id, out = run_build(store, ctx, dockerfile)
    steps = out.split("Step ")
    assert "Using cache" in steps[4] and "Using cache" not in steps[5]
    assert third_id != first_id
    assert rootfs_file(store, "test:1", "/srv/app/app.py").read_text() == "print('v2')\n"

    # --no-cache rebuilds everything.
    _, out = run_build(store, ctx, dockerfile, no_cache=True)
    assert "Using cache" not in out


def test_dockerignore_glob_chown_and_chmod(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"a.txt": "a", "b.txt": "b", "c.log": "c", "sub/d.txt": "d", "sub/e.log": "e",
                ".dockerignore": "*.log\n**/*.log\n!keep.log\n", "keep.log": "k"})
    run_build(store, ctx, "FROM busybox\nCOPY --chown=nobody:nogroup --chmod=600 *.txt /out/\n"
                          "COPY . /all/\n")
    assert sorted(os.listdir(rootfs_file(store, "test:1", "/out"))) == ["a.txt", "b.txt"]
    st = os.stat(rootfs_file(store, "test:1", "/out/a.txt"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
    everything = rootfs_file(store, "test:1", "/all")
    assert sorted(os.listdir(everything)) == [".dockerignore", "Dockerfile", "a.txt", "b.txt",
                                               "keep.log", "sub"]
    assert os.listdir(everything / "sub") == ["d.txt"]


def test_copy_outside_context_is_refused(store, ctx, tmp_dir):
    bootstrap_busybox(store=store)
    (tmp_dir / "secret").write_text("s")
    os.symlink("../secret", ctx / "link")
    os.symlink("/etc/passwd", ctx / "abs")
    for src in ("../secret", "link", "abs", "/../secret"):
        with pytest.raises(DockerfileError) as err:
            run_build(store, ctx, f"FROM busybox\nCOPY {src} /x\n")
        assert str(err.value).startswith("Dockerfile:2: COPY: ")
        assert "outside the build context" in str(err.value) or "not found" in str(err.value)


def test_missing_source_and_missing_base(store, ctx):
    bootstrap_busybox(store=store)
    with pytest.raises(DockerfileError) as err:
        run_build(store, ctx, "FROM busybox\n\nCOPY nothere /x\n")
    assert str(err.value) == "Dockerfile:3: COPY: nothere: not found in the build context"
    with pytest.raises(DockerfileError) as err:
        run_build(store, ctx, "FROM nosuch:1\n")
    assert str(err.value).startswith("Dockerfile:1: FROM: image 'nosuch:1' is not in the local store")


def test_multi_stage_scratch_target_and_build_args(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"src/main.txt": "main"})
    dockerfile = ("ARG VERSION=1\nFROM busybox AS build\nARG VERSION\nCOPY src /build/\n"
                  "LABEL v=$VERSION\n"
                  "FROM scratch AS final\nARG VERSION\nCOPY --from=build /build/main.txt /main-${VERSION}.txt\n"
                  "CMD [\"/main\"]\n"
                  "FROM busybox AS unused\nCOPY nothere /x\n")
    _, out = run_build(store, ctx, dockerfile, target="final", build_args={"VERSION": "7"})
    img = store.resolve("test:1")
    assert len(img.lower_dirs) == 1
    assert os.listdir(img.lower_dirs[0]) == ["main-7.txt"]
    assert img.config.cmd == ("/main",)
    assert "unused" not in out  # the stage the target does not need is never built
    _, _ = run_build(store, ctx, dockerfile, target="build", tag="test:build")
    assert store.resolve("test:build").config.labels == {"v": "1"}


def test_add_unpacks_local_tar(store, ctx):
    bootstrap_busybox(store=store)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside"
        ti = tarfile.TarInfo("pkg/file.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    (ctx / "plain.txt").write_text("p")
    run_build(store, ctx, "FROM busybox\nADD pkg.tar.gz /opt/\nADD plain.txt /opt/\n")
    assert rootfs_file(store, "test:1", "/opt/pkg/file.txt").read_bytes() == b"inside"
    assert rootfs_file(store, "test:1", "/opt/plain.txt").read_text() == "p"
    with pytest.raises(DockerfileError) as err:
        run_build(store, ctx, "FROM busybox\nADD http://example.com/x /x\n")
    assert "URL" in str(err.value)


def test_onbuild_recorded_and_triggered(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"f.txt": "f"})
    run_build(store, ctx, "FROM busybox\nONBUILD COPY f.txt /from-onbuild.txt\n", tag="parent:1")
    assert store.inspect("parent:1")["Config"]["OnBuild"] == ["COPY f.txt /from-onbuild.txt"]
    _, out = run_build(store, ctx, "FROM parent:1\nCMD [\"true\"]\n", tag="child:1")
    assert "Executing ONBUILD trigger" in out
    assert rootfs_file(store, "child:1", "/from-onbuild.txt").read_text() == "f"
    assert "OnBuild" not in store.inspect("child:1")["Config"]


def test_healthcheck_shell_and_cmd_forms(store, ctx):
    bootstrap_busybox(store=store)
    run_build(store, ctx, 'FROM busybox\nSHELL ["/bin/sh", "-ec"]\nCMD echo hi\n'
                          "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\n")
    cfg = store.inspect("test:1")["Config"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost"],
                                  "Interval": 5_000_000_000, "Retries": 2}


class RecordingExecutor:
    """Test double for the RUN side: records requests, writes a file into the upper dir."""

    def __init__(self, code: int = 0) -> None:
        self.requests: list[RunRequest] = []
        self.code = code

    def run(self, *, request: RunRequest, output) -> int:
        self.requests.append(request)
        (request.upper_dir / "ran.txt").write_text(" ".join(request.argv))
        output.write("fake output\n")
        return self.code


def test_run_request_and_cache_with_fake_executor(store, ctx):
    bootstrap_busybox(store=store)
    fake = RecordingExecutor()
    dockerfile = "FROM busybox\nARG MODE=fast\nENV A=1\nUSER nobody\nWORKDIR /tmp\nRUN echo $A $MODE\n"
    (ctx / "Dockerfile").write_text(dockerfile)
    build(store=store, options=BuildOptions(context=ctx, tags=("t:1",)), out=io.StringIO(), executor=fake)
    [req] = fake.requests
    assert req.argv == ("/bin/sh", "-c", "echo $A $MODE")
    env = dict(req.env)
    assert env["A"] == "1" and env["MODE"] == "fast" and "PATH" in env
    assert (req.uid, req.gid, req.working_dir) == (65534, 65534, "/tmp")
    assert rootfs_file(store, "t:1", "/ran.txt").read_text() == "/bin/sh -c echo $A $MODE"
    assert "MODE=fast" not in store.resolve("t:1").config.env   # ARG is not persisted
    build(store=store, options=BuildOptions(context=ctx, tags=("t:1",)), out=io.StringIO(), executor=fake)
    assert len(fake.requests) == 1                                # cached
    build(store=store, options=BuildOptions(context=ctx, tags=("t:1",), build_args={"MODE": "slow"}),
          out=io.StringIO(), executor=fake)
    assert len(fake.requests) == 2                                # a different ARG value misses


def test_failing_run_with_fake_executor_names_line_and_code(store, ctx):
    bootstrap_busybox(store=store)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN false\n")
    with pytest.raises(BuildError) as err:
        build(store=store, options=BuildOptions(context=ctx, tags=("t:1",)), out=io.StringIO(),
              executor=RecordingExecutor(code=7))
    assert str(err.value) == "Dockerfile:2: RUN: the command 'false' returned a non-zero code: 7"
    assert store.resolve("t:1") is None
    assert not any(store.tmp.iterdir())


def test_unsupported_flags_are_refused_not_ignored(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"a": "a"})
    for line, flag in (("COPY --exclude=*.md a /a", "--exclude"),
                       ("RUN --mount=type=cache,target=/c true", "--mount")):
        with pytest.raises(DockerfileError) as err:
            run_build(store, ctx, f"FROM busybox\n{line}\n")
        assert str(err.value).startswith(f"Dockerfile:2: {line.split()[0]}: {flag} is not supported")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --network=bridge true\n")
    with pytest.raises(DockerfileError) as err:
        build(store=store, options=BuildOptions(context=ctx), out=io.StringIO(),
              executor=RecordingExecutor())
    assert "--network=bridge: must be none, default or host" in str(err.value)


def test_copy_destination_follows_image_symlinks_and_existing_dirs(store, ctx):
    bootstrap_busybox(store=store)
    write(ctx, {"tool": "#!/bin/sh\n", "Dockerfile": ""})
    # A merged-/usr style base: /lib -> usr/lib, and an existing /usr/local/bin directory.
    run_build(store, ctx, "FROM scratch\nCOPY --from=busybox / /\n", tag="base:1")
    layer = store.resolve("base:1").lower_dirs[0]
    (layer / "usr/lib").mkdir(parents=True, exist_ok=True)
    os.symlink("usr/lib", layer / "lib")
    (layer / "usr/local/bin").mkdir(parents=True)
    run_build(store, ctx, "FROM base:1\nCOPY tool /lib/\nCOPY tool /usr/local/bin\n", tag="t:2")
    top = store.resolve("t:2").lower_dirs
    assert os.path.islink(top[0] / "lib")                      # the symlink is not hidden
    assert (top[1] / "usr/lib/tool").read_text() == "#!/bin/sh\n"
    assert not (top[1] / "lib").exists()
    assert (top[2] / "usr/local/bin/tool").is_file()           # into the existing directory
