"""`skiff build`: execute a parsed Dockerfile into the image store.

    parse + validate (agent.images.dockerfile)
      → pick the stages the target needs (FROM <stage>, COPY --from=<stage>)
      → per stage, per instruction:
           config-only (ENV, CMD, ...)   agent.images.imageconfig
           COPY / ADD / WORKDIR          a fresh dir laid out by agent.images.buildcontext
           RUN                           a container of Skiff's runtime (agent.images.buildrun)
                                         whose overlay upper dir becomes the layer
      → commit config + manifest, tag.

The layer cache: every instruction extends a chain key,
sha256(parent key, instruction after substitution, extra), where extra is the
content hash of copied files for COPY/ADD and the environment/user/shell for
RUN. A layer-producing step looks its key up in ROOT/buildcache/<key>.json
first; so an unchanged rebuild reuses every layer, and a changed app.py misses
from its COPY on. Output follows `docker build`: `Step N/M : ...`,
` ---> Using cache`, the time of each step, RUN output streamed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, TextIO

from agent.images import buildcontext
from agent.images.dockerfile import (Dockerfile, Instruction, Stage, meta_arg_env,
                                     parse, parse_file, validate)
from agent.images.errors import ImageError, ImageNotFound
from agent.images.imageconfig import CONFIG_ONLY, apply_instruction, env_dict
from agent.images.shellwords import SubstitutionError, expand_word
from agent.images.reference import parse_reference
from agent.images.store import ImageStore, Layer, _fsync_write


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# BuildKit flags the parser accepts but this builder does not implement; refused
# rather than silently ignored (--link and --platform change nothing here).
UNSUPPORTED_FLAGS = {
    "copy": ("parents", "exclude"),
    "add": ("checksum", "keep-git-dir", "exclude"),
    "run": ("mount", "security"),
}


class BuildError(ImageError):
    pass


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None          # default CONTEXT/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    network: str = "default"                # "none" | "default"


@dataclass(frozen=True)
class RunRequest:
    lower_dirs: tuple[Path, ...]
    upper_dir: Path
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    uid: int
    gid: int
    network: str


class RunExecutor(Protocol):
    def run(self, *, request: RunRequest, output: TextIO | None) -> int:
        """Run the command to completion, stream its output, return its exit code;
        leave no container or mount behind."""


@dataclass
class _State:
    layers: list[Layer]
    config: dict
    args: dict[str, str]
    chain: str
    cmd_set: bool = False
    # When the newest layer was made (cached steps keep their original time),
    # so an unchanged rebuild writes byte-identical config: the same image id.
    created: str = "1970-01-01T00:00:00Z"

    def variables(self) -> dict[str, str]:
        return {**self.args, **env_dict(self.config)}


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


class Builder:
    def __init__(self, *, store: ImageStore, options: BuildOptions, out: TextIO | None,
                 executor: RunExecutor | None = None) -> None:
        self.store, self.options, self.out = store, options, out
        self.executor = executor
        self.cache_dir = store.root / "buildcache"
        self.cache_dir.mkdir(exist_ok=True)
        self.step = 0
        self.total = 0
        self.used_args: set[str] = set()
        self._hit_created = "1970-01-01T00:00:00Z"

    def say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    # ---- cache -----------------------------------------------------------
    def cache_get(self, key: str) -> tuple[bool, Layer | None]:
        if self.options.no_cache:
            return False, None
        try:
            entry = json.loads((self.cache_dir / f"{key}.json").read_text())
        except (FileNotFoundError, ValueError):
            return False, None
        self._hit_created = entry.get("created", "1970-01-01T00:00:00Z")
        if entry.get("layer") is None:
            return True, None
        layer = Layer(**entry["layer"])
        if not self.store.layer_dir(layer.diff_id).exists() or not self.store.has_blob(layer.digest):
            return False, None
        return True, layer

    def cache_put(self, key: str, layer: Layer | None, *, created: str) -> None:
        # `created` is the time the step recorded in history: a later cache hit
        # must reproduce it exactly, or the image id would change.
        data = {"layer": layer.__dict__ if layer else None, "created": created}
        _fsync_write(self.cache_dir / f"{key}.json", json.dumps(data).encode())

    # ---- stages ----------------------------------------------------------
    def build(self) -> str:
        path = self.options.dockerfile or self.options.context / "Dockerfile"
        try:
            df = validate(dockerfile=parse_file(path=path), build_args=self.options.build_args,
                          target=self.options.target)
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not self.options.context.is_dir():
            raise BuildError(f"build context {self.options.context} is not a directory")
        meta = meta_arg_env(meta_args=df.meta_args, build_args=self.options.build_args,
                            escape=df.escape)
        self.used_args |= {w.partition("=")[0] for ins in df.meta_args for w in ins.args}
        target = len(df.stages) - 1
        if self.options.target:
            target = next(s.index for s in df.stages if s.name == self.options.target.lower())
        needed = self._needed(df=df, target=target, meta=meta)
        stages = [s for s in df.stages if s.index in needed]
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.context_tree = buildcontext.SourceTree.context(path=self.options.context)
        built: dict[int, _State] = {}
        for stage in stages:
            built[stage.index] = self._build_stage(df=df, stage=stage, built=built, meta=meta)
        unused = sorted(set(self.options.build_args) - self.used_args)
        if unused:
            self.say(f"[Warning] One or more build-args {unused} were not consumed")
        final = built[target]
        config = dict(final.config)
        config.pop("rootfs", None)
        config["created"] = final.created
        tags = list(self.options.tags)
        image_id = self.store.commit_image(config=config, layers=final.layers,
                                           ref=tags[0] if tags else None)
        for tag in tags[1:]:
            self.store.tag(image_id, tag)
        self.say(f"Successfully built {image_id.removeprefix('sha256:')[:12]}")
        for tag in tags:
            self.say(f"Successfully tagged {parse_reference(tag).familiar()}")
        return image_id

    def _stage_ref(self, df: Dockerfile, ref: str) -> Stage | None:
        for s in df.stages:
            if s.name == ref.lower() or (ref.isdigit() and s.index == int(ref)):
                return s
        return None

    def _needed(self, *, df: Dockerfile, target: int, meta: dict[str, str]) -> set[int]:
        needed: set[int] = set()
        todo = [target]
        while todo:
            idx = todo.pop()
            if idx in needed:
                continue
            needed.add(idx)
            stage = df.stages[idx]
            base = self._stage_ref(df, expand_word(stage.base, env=meta, escape=df.escape))
            if base is not None and base.index < idx:
                todo.append(base.index)
            for ins in stage.instructions:
                src = ins.flag("from") if ins.instruction == "copy" else None
                if src:
                    s = self._stage_ref(df, src)
                    if s is not None and s.index < idx:
                        todo.append(s.index)
        return needed

    def _announce(self, ins: Instruction) -> float:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {ins.original}")
        return time.monotonic()

    def _done(self, state: _State, started: float, *, cached: bool = False) -> None:
        if cached:
            self.say(" ---> Using cache")
        self.say(f" ---> {state.chain[:12]} ({time.monotonic() - started:.2f}s)")

    def _build_stage(self, *, df: Dockerfile, stage: Stage, built: dict[int, _State],
                     meta: dict[str, str]) -> _State:
        started = self._announce(stage.from_instruction)
        base_name = expand_word(stage.base, env=meta, escape=df.escape)
        base_stage = self._stage_ref(df, base_name)
        if base_stage is not None and base_stage.index < stage.index:
            parent = built[base_stage.index]
            state = _State(layers=list(parent.layers), config=json.loads(json.dumps(parent.config)),
                           args={}, chain=parent.chain, created=parent.created)
        elif base_name == "scratch":
            state = _State(layers=[], config={"config": {"Env": [f"PATH={DEFAULT_PATH}"]}},
                           args={}, chain=_key("scratch"))
        else:
            state = self._from_image(df=df, ins=stage.from_instruction, ref=base_name)
        self._done(state, started)
        for trigger in (state.config.get("config") or {}).pop("OnBuild", None) or []:
            ins = parse(text=trigger, filename=f"ONBUILD of {base_name}").instructions[0]
            self.say(f"# Executing ONBUILD trigger: {trigger}")
            state = self._execute(df=df, stage=stage, ins=ins, state=state, built=built, meta=meta,
                                  announce=False)
        for ins in stage.instructions:
            state = self._execute(df=df, stage=stage, ins=ins, state=state, built=built, meta=meta)
        return state

    def _from_image(self, *, df: Dockerfile, ins: Instruction, ref: str) -> _State:
        try:
            _digest, manifest, config = self.store.manifest(ref)
        except ImageNotFound:
            raise df.error(ins, f"image {ref!r} is not in the local store (skiff image bootstrap, "
                           f"load or import it first)") from None
        except ImageError as exc:
            raise df.error(ins, str(exc)) from None
        self.store.ensure_unpacked(manifest=manifest, config=config)
        layers = [Layer(digest=l["digest"], diff_id=d, size=l["size"], media_type=l["mediaType"])
                  for l, d in zip(manifest["layers"], config["rootfs"]["diff_ids"])]
        keep = {k: v for k, v in config.items() if k in ("config", "history", "author")}
        return _State(layers=layers, config=keep, args={}, chain=_key("image", manifest["config"]["digest"]),
                      created=config.get("created") or "1970-01-01T00:00:00Z")

    def lower_dirs(self, state: _State) -> tuple[Path, ...]:
        return tuple(self.store.layer_dir(l.diff_id) for l in state.layers)

    # ---- instructions ----------------------------------------------------
    def _execute(self, *, df: Dockerfile, stage: Stage, ins: Instruction, state: _State,
                 built: dict[int, _State], meta: dict[str, str], announce: bool = True) -> _State:
        started = self._announce(ins) if announce else time.monotonic()
        name = ins.instruction
        for flag in ins.flags:
            key = flag[2:].partition("=")[0]
            if key in UNSUPPORTED_FLAGS.get(name, ()):
                raise df.error(ins, f"--{key} is not supported by this builder")
        variables = state.variables()
        history: dict = {"created_by": ins.original}
        if name == "arg":
            for word in ins.args:
                key, sep, default = word.partition("=")
                self.used_args.add(key)
                if key in self.options.build_args and self.options.build_args[key] is not None:
                    state.args[key] = self.options.build_args[key]  # type: ignore[assignment]
                elif key in self.options.build_args:
                    state.args[key] = os.environ.get(key, "")
                elif sep:
                    try:
                        state.args[key] = expand_word(default, env=variables, escape=df.escape)
                    except SubstitutionError as exc:
                        raise df.error(ins, str(exc)) from None
                elif key in meta:
                    state.args[key] = meta[key]
            state.chain = _key(state.chain, ins.original, json.dumps(sorted(state.args.items())))
            history["empty_layer"] = True
        elif name in CONFIG_ONLY:
            state.config = apply_instruction(config=state.config, ins=ins, variables=variables,
                                             escape=df.escape, cmd_set_in_stage=state.cmd_set, df=df)
            if name == "cmd":
                state.cmd_set = True
            state.chain = _key(state.chain, ins.original, json.dumps(variables, sort_keys=True))
            history["empty_layer"] = True
        elif name in ("copy", "add"):
            cached = self._copy(df=df, ins=ins, state=state, built=built, variables=variables,
                                history=history)
            self._record(state, history)
            self._done(state, started, cached=cached)
            return state
        elif name == "workdir":
            pass
        elif name == "run":
            from agent.images.buildrun import run_step
            cached = run_step(builder=self, df=df, ins=ins, state=state, variables=variables,
                              history=history)
            self._record(state, history)
            self._done(state, started, cached=cached)
            return state
        else:
            raise df.error(ins, "not supported by the builder")
        cached = False
        if name == "workdir":
            cached = self._workdir(df=df, ins=ins, state=state, variables=variables, history=history)
        self._record(state, history)
        self._done(state, started, cached=cached)
        return state

    def _record(self, state: _State, history: dict) -> None:
        history.setdefault("created", state.created)
        state.config["history"] = [*(state.config.get("history") or []), history]

    def _workdir(self, *, df: Dockerfile, ins: Instruction, state: _State,
                 variables: dict[str, str], history: dict) -> bool:
        state.config = apply_instruction(config=state.config, ins=ins, variables=variables,
                                         escape=df.escape, df=df)
        wd = state.config["config"]["WorkingDir"]
        state.chain = _key(state.chain, "WORKDIR", wd)
        tree = buildcontext.SourceTree.layers(lower_dirs=self.lower_dirs(state), label="image")
        if tree.locate(wd.lstrip("/")) is not None:
            history["empty_layer"] = True
            return False
        # Docker creates a missing WORKDIR; that is a (tiny) layer.
        hit, cached = self.cache_get(state.chain)
        if hit:
            state.created = self._hit_created
            if cached is not None:
                state.layers.append(cached)
            return True
        state.created = _now()
        with self._layer_dir() as layer:
            buildcontext._mkdirs(layer, wd.lstrip("/"))
            self._commit_layer(state=state, layer_dir=layer, key=state.chain, history=history)
        return False

    @contextlib.contextmanager
    def _layer_dir(self):
        d = Path(tempfile.mkdtemp(dir=self.store.tmp, prefix="build-layer-"))
        os.chmod(d, 0o755)
        try:
            yield d
        finally:
            if d.exists():
                shutil.rmtree(d)

    def _commit_layer(self, *, state: _State, layer_dir: Path, key: str, history: dict) -> None:
        if not any(layer_dir.iterdir()):
            self.cache_put(key, None, created=state.created)
            history["empty_layer"] = True
            return
        layer = self.store.add_layer_from_dir(src=layer_dir, move=True)
        self.cache_put(key, layer, created=state.created)
        state.layers.append(layer)

    def _copy(self, *, df: Dockerfile, ins: Instruction, state: _State, built: dict[int, _State],
              variables: dict[str, str], history: dict) -> bool:
        try:
            words = [expand_word(a, env=variables, escape=df.escape) for a in ins.args]
        except SubstitutionError as exc:
            raise df.error(ins, str(exc)) from None
        *srcs, dest = words
        if ins.instruction == "add" and any("://" in s or s.startswith("git@") for s in srcs):
            raise df.error(ins, "ADD from a URL is not supported by this offline builder; "
                           "download it into the context and COPY it")
        src_ref = ins.flag("from")
        if src_ref:
            stage = self._stage_ref(df, src_ref)
            if stage is not None:
                src_state = built[stage.index]
                label = f"stage {stage.name or stage.index}"
            else:
                src_state = self._from_image(df=df, ins=ins, ref=src_ref)
                label = f"image {src_ref}"
            tree = buildcontext.SourceTree.layers(lower_dirs=self.lower_dirs(src_state), label=label)
        else:
            tree = self.context_tree
            src_state = None
        try:
            sources = [m for s in srcs for m in tree.glob(s)]
            owner = None
            if ins.flag("chown"):
                owner = buildcontext.lookup_owner(spec=expand_word(ins.flag("chown") or "", env=variables),
                                                  lower_dirs=self.lower_dirs(state))
            chmod = int(ins.flag("chmod") or "0", 8) if ins.flag("chmod") else None
            content = src_state.chain + json.dumps(sources) if src_state is not None \
                else buildcontext.content_hash(tree=tree, sources=sources)
        except ValueError:
            raise df.error(ins, f"--chmod={ins.flag('chmod')}: not an octal mode") from None
        except buildcontext.CopyError as exc:
            raise df.error(ins, str(exc)) from None
        workdir = (state.config.get("config") or {}).get("WorkingDir") or "/"
        key = _key(state.chain, ins.instruction, json.dumps(list(ins.flags)), json.dumps(words),
                   workdir, content)
        state.chain = key
        hit, layer = self.cache_get(key)
        if hit:
            state.created = self._hit_created
            if layer is not None:
                state.layers.append(layer)
            else:
                history["empty_layer"] = True
            return True
        state.created = _now()
        with self._layer_dir() as layer_dir:
            try:
                buildcontext.copy_into(tree=tree, sources=sources, dest=dest, workdir=workdir,
                                       layer=layer_dir, owner=owner, chmod=chmod,
                                       unpack_archives=ins.instruction == "add" and src_state is None,
                                       original=srcs,
                                       image=buildcontext.SourceTree.layers(
                                           lower_dirs=self.lower_dirs(state), label="image"))
            except (buildcontext.CopyError, ImageError) as exc:
                raise df.error(ins, str(exc)) from None
            self._commit_layer(state=state, layer_dir=layer_dir, key=key, history=history)
        return False


def build(*, store: ImageStore, options: BuildOptions, out: TextIO | None = None,
          executor: RunExecutor | None = None) -> str:
    """Build; returns the image id. Raises BuildError / DockerfileError.
    Without an executor, RUN uses Skiff's runtime, started on the first RUN
    and stopped before this returns."""
    own = None
    if executor is None:
        from agent.images.buildrun import RuntimeExecutor
        executor = own = RuntimeExecutor()
    try:
        return Builder(store=store, options=options, out=out, executor=executor).build()
    finally:
        if own is not None:
            own.close()
