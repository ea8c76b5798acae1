"""RUN steps: a command in a container of Skiff's own runtime, its upper dir a layer.

`run_step` does the builder's side (argv from the shell or exec form, the
environment — the image's Env plus the ARGs in scope —, the user, the cache
key, turning the caller-owned overlay upper dir into a layer).
`RuntimeExecutor` does the container's side through the `Runtime` protocol's
real implementation, `agent.runtime.linux.LinuxRuntime`: a one-container
sandbox (host network for `--network default`, its own empty one for `none`),
the output streamed from the log file while it runs, and everything removed
in `finally`, so a failing RUN leaves no container or mount.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent.images.buildcontext import CopyError, lookup_owner
from agent.images.imageconfig import DEFAULT_SHELL
from agent.images.errors import ImageError

if TYPE_CHECKING:
    import asyncio

    from agent.images.builder import Builder, RunRequest, _State
    from agent.images.dockerfile import Dockerfile, Instruction


def run_step(*, builder: "Builder", df: "Dockerfile", ins: "Instruction", state: "_State",
             variables: dict[str, str], history: dict) -> bool:
    """Execute one RUN (or reuse its cached layer); returns whether it was cached."""
    from agent.images.builder import DEFAULT_PATH, BuildError, RunRequest, _key, _now

    c = state.config.get("config") or {}
    if ins.json_form:
        argv = tuple(ins.args)
    else:
        argv = (*(c.get("Shell") or DEFAULT_SHELL), ins.args[0])
    env: dict[str, str] = {"PATH": DEFAULT_PATH}
    env.update(state.args)   # ARGs reach RUN as environment, but are not kept in the image
    env.update(env_of(c))
    user = c.get("User") or "0"
    workdir = c.get("WorkingDir") or "/"
    network = ins.flag("network") or builder.options.network
    if network not in ("none", "default", "host"):
        raise df.error(ins, f"--network={network}: must be none, default or host")
    key = _key(state.chain, "run", json.dumps(argv), json.dumps(sorted(env.items())), user, workdir,
               network)
    state.chain = key
    hit, layer = builder.cache_get(key)
    if hit:
        state.created = builder._hit_created
        if layer is not None:
            state.layers.append(layer)
        else:
            history["empty_layer"] = True
        return True
    try:
        uid, gid = lookup_owner(spec=user, lower_dirs=builder.lower_dirs(state))
    except CopyError as exc:
        raise df.error(ins, f"USER {user}: {exc}") from None
    executor = builder.executor
    assert executor is not None
    state.created = _now()
    work = Path(tempfile.mkdtemp(dir=builder.store.tmp, prefix="build-run-"))
    try:
        upper = work / "upper"
        upper.mkdir(mode=0o755)
        request = RunRequest(lower_dirs=builder.lower_dirs(state), upper_dir=upper, argv=argv,
                             env=tuple(env.items()), working_dir=workdir, uid=uid, gid=gid,
                             network="none" if network == "none" else "default")
        try:
            code = executor.run(request=request, output=builder.out)
        except ImageError as exc:
            raise df.error(ins, str(exc)) from None
        if code != 0:
            raise BuildError(f"{df.filename}:{ins.line}: RUN: the command "
                             f"{' '.join(argv) if ins.json_form else ins.args[0]!r} "
                             f"returned a non-zero code: {code}")
        _strip_runtime_artifacts(upper)
        builder._commit_layer(state=state, layer_dir=upper, key=key, history=history)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return False


# Mount targets the runtime creates for its per-pod bind mounts; empty files
# in the upper dir that would otherwise shadow the image's own in every layer.
_RUNTIME_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


def _strip_runtime_artifacts(upper: Path) -> None:
    for rel in _RUNTIME_FILES:
        path = upper / rel
        if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
            path.unlink()
    etc = upper / "etc"
    if etc.is_dir() and not etc.is_symlink() and not any(etc.iterdir()):
        try:
            opaque = os.getxattr(etc, "trusted.overlay.opaque") == b"y"
        except OSError:
            opaque = False
        if not opaque:
            etc.rmdir()


def env_of(c: dict) -> dict[str, str]:
    out = {}
    for item in c.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out



class RuntimeExecutor:
    """RunExecutor over agent.runtime.linux.LinuxRuntime.

    One runtime (and so one zygote) and one event loop serve every RUN of a
    build; its state lives in a private run dir that `close()` removes."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime = None
        self._run_dir: Path | None = None
        self._cgroup_parent = ""

    def _ensure(self):
        if self._runtime is None:
            try:
                from agent.runtime.linux import LinuxRuntime
            except ImportError as exc:
                raise ImageError(f"RUN needs Skiff's runtime (agent.runtime.linux): {exc}") from None
            import asyncio   # on the first RUN: a build from cache never pays for it
            self._run_dir = Path(tempfile.mkdtemp(prefix="skiff-build-run-"))
            self._loop = asyncio.new_event_loop()
            # Its own cgroup parent: a build neither uses nor leaves anything in a node agent's.
            self._cgroup_parent = f"skiff-build-{uuid.uuid4().hex[:8]}"
            self._runtime = LinuxRuntime(run_dir=self._run_dir, cgroup_parent=self._cgroup_parent)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
            from agent.runtime.linux.cgroups import remove_empty
            remove_empty(self._cgroup_parent)
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def run(self, *, request: "RunRequest", output: TextIO | None) -> int:
        runtime = self._ensure()
        assert self._loop is not None
        return self._loop.run_until_complete(self._run(runtime=runtime, request=request, output=output))

    async def _run(self, *, runtime, request: "RunRequest", output: TextIO | None) -> int:
        import asyncio
        from agent.runtime.interface import ContainerConfig, SandboxConfig, SecurityConfig, StartError

        build_id = "skiff-build-" + uuid.uuid4().hex[:12]
        assert self._run_dir is not None
        log = self._run_dir / f"{build_id}.log"
        log.touch()
        sandbox_made = started = False
        try:
            await runtime.create_sandbox(SandboxConfig(
                pod_id=build_id, namespace="skiff-build", name=build_id, hostname="buildkitsandbox",
                host_network=request.network != "none"))
            sandbox_made = True
            config = ContainerConfig(
                id=build_id + "-run", pod_id=build_id, name="run", image="build", image_id="",
                lower_dirs=request.lower_dirs, args=request.argv, env=request.env,
                working_dir=request.working_dir, log_path=log, upper_dir=request.upper_dir,
                security=SecurityConfig(uid=request.uid, gid=request.gid, no_new_privileges=False))
            try:
                await runtime.start(config)
            except StartError as exc:
                raise ImageError(f"the command could not start: {exc}") from None
            started = True
            waiter = asyncio.ensure_future(runtime.wait(config.id))
            with open(log, "rb") as f:
                while True:
                    done = waiter.done()
                    chunk = f.read()
                    if chunk and output is not None:
                        output.write(chunk.decode("utf-8", "replace"))
                        output.flush()
                    if done:
                        break
                    await asyncio.wait({waiter}, timeout=0.05)
            status = waiter.result()
            return status.exit_code if status.exit_code is not None else 1
        finally:
            if started:
                await runtime.remove(build_id + "-run")
            if sandbox_made:
                await runtime.remove_sandbox(build_id)
            with contextlib.suppress(FileNotFoundError):
                log.unlink()
