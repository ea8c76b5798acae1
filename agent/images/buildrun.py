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

import asyncio
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent.images.buildcontext import CopyError, lookup_owner
from agent.images.imageconfig import DEFAULT_SHELL
from agent.images.errors import ImageError

if TYPE_CHECKING:
    from agent.images.builder import Builder, RunRequest, _State
    from agent.images.dockerfile import Dockerfile, Instruction


def run_step(*, builder: "Builder", df: "Dockerfile", ins: "Instruction", state: "_State",
             variables: dict[str, str], history: dict) -> bool:
    """Execute one RUN (or reuse its cached layer); returns whether it was cached."""
    from agent.images.builder import DEFAULT_PATH, BuildError, RunRequest, _key

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
    network = (ins.flag("network") or builder.options.network)
    key = _key(state.chain, "run", json.dumps(argv), json.dumps(sorted(env.items())), user, workdir,
               network)
    state.chain = key
    hit, layer = builder.cache_get(key)
    if hit:
        if layer is not None:
            state.layers.append(layer)
        else:
            history["empty_layer"] = True
        return True
    try:
        uid, gid = lookup_owner(spec=user, lower_dirs=builder.lower_dirs(state))
    except CopyError as exc:
        raise df.error(ins, f"USER {user}: {exc}") from None
    executor = builder.executor or RuntimeExecutor()
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
        builder._commit_layer(state=state, layer_dir=upper, key=key, history=history)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return False


def env_of(c: dict) -> dict[str, str]:
    out = {}
    for item in c.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out



class RuntimeExecutor:
    """RunExecutor over agent.runtime.linux.LinuxRuntime (state under a private run dir)."""

    def __init__(self, *, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir

    def run(self, *, request: "RunRequest", output: TextIO | None) -> int:
        return asyncio.run(self._run(request=request, output=output))

    async def _run(self, *, request: "RunRequest", output: TextIO | None) -> int:
        try:
            from agent.runtime import linux
            runtime_cls = getattr(linux, "LinuxRuntime")
        except (ImportError, AttributeError) as exc:
            raise ImageError(f"RUN needs Skiff's runtime (agent.runtime.linux.LinuxRuntime): {exc}") from None
        from agent.runtime.interface import ContainerConfig, SandboxConfig, SecurityConfig

        run_dir = Path(tempfile.mkdtemp(prefix="skiff-build-run-"))
        build_id = "skiff-build-" + uuid.uuid4().hex[:12]
        log = run_dir / "run.log"
        log.touch()
        runtime = _make_runtime(runtime_cls, run_dir=self.run_dir or run_dir)
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
            await runtime.start(config)
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
                    await asyncio.sleep(0.05)
            status = waiter.result()
            return status.exit_code if status.exit_code is not None else 1
        finally:
            if started:
                await runtime.remove(build_id + "-run")
            if sandbox_made:
                await runtime.remove_sandbox(build_id)
            shutil.rmtree(run_dir, ignore_errors=True)


def _make_runtime(cls, *, run_dir: Path):
    import inspect
    params = inspect.signature(cls).parameters
    if "run_dir" in params:
        return cls(run_dir=run_dir)
    if "config" in params:
        return cls(config=None)
    return cls()
