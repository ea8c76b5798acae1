"""The Dockerfile language, parsed the way Docker's (BuildKit's) parser does.

Two phases, as in Docker:
1. `parse` turns text into `Instruction`s: parser directives (`# escape=`,
   `# syntax=`) at the top, comments dropped, line continuations joined,
   leading `--flags` split off, and the arguments split per instruction (exec-
   form JSON arrays to their items; ENV/LABEL to key, value, ...; ARG to its
   words; EXPOSE/FROM/COPY/ADD/VOLUME on whitespace; the rest one string).
   Quotes stay in the arguments here; they go at substitution time. RUN takes
   heredocs (`RUN <<EOF` ... `EOF`, BuildKit's form); COPY/ADD heredocs are refused.
2. `validate` checks what Docker's instruction layer checks (flags each
   instruction takes, argument counts, FROM first, stage names, --target) and
   splits the file into stages.
Errors read `Dockerfile:LINE: INSTRUCTION: message`. The builder
(agent.images.builder) consumes the stages; substitution is agent.images.shellwords.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from agent.images.errors import ImageError
from agent.images.shellwords import SubstitutionError, expand_word, split_words

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
                "workdir")
# Flags each instruction accepts (BuildKit's set); values are checked by the builder.
ALLOWED_FLAGS: dict[str, frozenset[str]] = {
    "from": frozenset({"platform"}),
    "copy": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "add": frozenset({"chown", "chmod", "checksum", "keep-git-dir", "link", "exclude"}),
    "run": frozenset({"mount", "network", "security"}),
    "healthcheck": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}
# Instructions whose arguments the builder substitutes (Docker's list).
EXPANDED = frozenset({"add", "copy", "env", "expose", "from", "label", "stopsignal", "user",
                      "volume", "workdir", "arg", "onbuild"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class DockerfileError(ImageError):
    pass


@dataclass(frozen=True)
class Instruction:
    line: int                       # first line of the instruction (1-based)
    instruction: str                # lower case: "run"
    flags: tuple[str, ...]          # ("--from=build",)
    args: tuple[str, ...]
    original: str                   # the joined source text
    json_form: bool = False         # exec form (a JSON array)
    sub: "Instruction | None" = None  # ONBUILD's instruction

    def as_json(self) -> dict:
        return {"line": self.line, "instruction": self.instruction, "flags": list(self.flags),
                "args": list(self.args)}

    def flag(self, name: str) -> str | None:
        """The value of --name=value (last one wins), "" for a bare --name, None if absent."""
        value = None
        for f in self.flags:
            key, sep, v = f[2:].partition("=")
            if key == name:
                value = v if sep else ""
        return value


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None                # the AS name, lower-cased
    base: str                       # FROM's image (unexpanded), "scratch", or a stage name
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]   # after FROM
    platform: str | None = None


@dataclass(frozen=True)
class Dockerfile:
    filename: str
    instructions: tuple[Instruction, ...]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    meta_args: tuple[Instruction, ...] = ()      # ARGs before the first FROM
    stages: tuple[Stage, ...] = ()

    def error(self, ins: Instruction, message: str) -> DockerfileError:
        return DockerfileError(f"{self.filename}:{ins.line}: {ins.instruction.upper()}: {message}")


def parse_file(*, path: Path) -> Dockerfile:
    return parse(text=path.read_text(), filename=path.name)


def _parse_directives(lines: list[str]) -> tuple[dict[str, str], int]:
    directives: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m or not line.strip().startswith("#"):
            return directives, i
        key = m.group(1).lower()
        if key in directives:
            raise DockerfileError(f"only one {key} parser directive can be used")
        directives[key] = m.group(2)
    return directives, len(lines)


def parse(*, text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Phase 1 plus validation of the structure (stages); see the module docstring."""
    lines = text.splitlines()
    directives, _ = _parse_directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"{filename}:1: invalid escape token {escape!r}: must be ` or \\")
    instructions: list[Instruction] = []
    i = 0
    # Docker's rule (BuildKit's lineContinuationRegex): the escape character
    # as the last non-blank character continues the line unless the character
    # before it is the escape character too (`C:\\` ends a line); a line that
    # is only the escape character continues as well.
    e = re.escape(escape)
    cont = re.compile(rf"(?:(?<=[^{e}])|^){e}[ \t]*$")
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        line = raw.lstrip()
        while True:
            m = cont.search(line)
            if not m:
                parts.append(line)
                break
            parts.append(line[:m.start()])
            i += 1
            # Comment and empty lines inside a continuation are dropped, as Docker does.
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            line = lines[i]
        i += 1
        text_line = "".join(parts)
        heredoc = _HEREDOC.search(text_line)
        if heredoc and text_line.split(None, 1)[0].lower() == "run":
            body, i = _read_heredoc(lines=lines, i=i, word=heredoc.group(3),
                                    strip_tabs=heredoc.group(1) == "-", filename=filename, line=start + 1)
            instructions.append(_heredoc_run(text=text_line, match=heredoc, body=body, line=start + 1,
                                             escape=escape, filename=filename))
            continue
        if heredoc and text_line.split(None, 1)[0].lower() in ("copy", "add"):
            raise DockerfileError(f"{filename}:{start + 1}: {text_line.split(None, 1)[0].upper()}: "
                                  "heredocs are supported for RUN only")
        instructions.append(_parse_line(text=text_line, line=start + 1, escape=escape,
                                        filename=filename))
    return Dockerfile(filename=filename, instructions=tuple(instructions), escape=escape,
                      directives=directives)


_HEREDOC = re.compile(r"(?<!\S)<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def _read_heredoc(*, lines: list[str], i: int, word: str, strip_tabs: bool, filename: str,
                  line: int) -> tuple[str, int]:
    """The heredoc body starting at lines[i], and the index after its terminator."""
    body = []
    while i < len(lines):
        text = lines[i].lstrip("\t") if strip_tabs else lines[i]
        i += 1
        if text == word:
            return "\n".join(body) + "\n", i
        body.append(text)
    raise DockerfileError(f"{filename}:{line}: RUN: heredoc {word!r} is not terminated")


def _heredoc_run(*, text: str, match: re.Match, body: str, line: int, escape: str,
                 filename: str) -> Instruction:
    """RUN with a heredoc, as BuildKit runs it: `RUN <<EOF` alone makes the body
    the script; `RUN cmd <<EOF` hands the whole here-document to the shell."""
    ins = _parse_line(text=text, line=line, escape=escape, filename=filename)
    command = ins.args[0] if ins.args else ""
    if command.strip() == match.group(0):
        script = body
    else:
        script = f"{command}\n{body}{match.group(3)}"
    return Instruction(line=line, instruction="run", flags=ins.flags, args=(script,),
                       original=text.strip(), json_form=False)


def _split_flags(rest: str) -> tuple[list[str], str]:
    flags = []
    while True:
        rest = rest.lstrip()
        m = re.match(r"--[a-zA-Z][a-zA-Z0-9-]*(=(\"[^\"]*\"|'[^']*'|\S*))?(\s|$)", rest)
        if not m:
            return flags, rest
        flags.append(m.group(0).strip())
        rest = rest[m.end():]


def _maybe_json(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _name_val(rest: str, *, escape: str, err: "callable") -> list[str]:
    words = split_words(rest, escape=escape)
    if not words:
        return []
    if "=" not in words[0]:
        # The old form: `ENV KEY value with spaces`.
        key, _, value = rest.strip().partition(" ")
        parts = re.split(r"\s+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise err("must have two arguments")
        return [parts[0], parts[1]]
    out = []
    for w in words:
        if "=" not in w:
            raise err(f"syntax error - can't find = in {w!r}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        if not k:
            raise err("names can not be blank")
        out += [k, v]
    return out


def _parse_line(*, text: str, line: int, escape: str, filename: str) -> Instruction:
    head, _, rest = text.strip().partition(" ")
    if "\t" in head:
        head, _, more = head.partition("\t")
        rest = more + " " + rest
    name = head.lower()

    def err(message: str) -> DockerfileError:
        return DockerfileError(f"{filename}:{line}: {head.upper()}: {message}")

    if name not in INSTRUCTIONS:
        raise DockerfileError(f"{filename}:{line}: unknown instruction: {head.upper()}")
    flags, rest = _split_flags(rest)
    rest = rest.strip()
    json_form = False
    sub = None
    if name in ("env", "label"):
        args = _name_val(rest, escape=escape, err=err)
    elif name == "arg":
        args = split_words(rest, escape=escape)
    elif name in ("cmd", "entrypoint", "run", "shell"):
        items = _maybe_json(rest)
        json_form = items is not None
        args = items if items is not None else ([rest] if rest else [])
    elif name in ("copy", "add", "volume"):
        items = _maybe_json(rest)
        json_form = items is not None
        args = items if items is not None else rest.split()
    elif name in ("from", "expose"):
        args = rest.split()
    elif name == "healthcheck":
        word, _, tail = rest.partition(" ")
        tail = tail.strip()
        if word.upper() == "CMD":
            items = _maybe_json(tail)
            json_form = items is not None
            args = ["CMD", *(items if items is not None else ([tail] if tail else []))]
        else:
            args = [word.upper()] + ([tail] if tail else []) if word else []
    elif name == "onbuild":
        if not rest:
            raise err("requires at least one argument")
        sub = _parse_line(text=rest, line=line, escape=escape, filename=filename)
        if sub.instruction in ("onbuild", "from", "maintainer"):
            raise err(f"{sub.instruction.upper()} isn't allowed as an ONBUILD trigger")
        args = [rest]
    else:  # maintainer, stopsignal, user, workdir
        args = [rest] if rest else []
    return Instruction(line=line, instruction=name, flags=tuple(flags), args=tuple(args),
                       original=text.strip(), json_form=json_form, sub=sub)


def _check(df: Dockerfile, ins: Instruction) -> None:
    allowed = ALLOWED_FLAGS.get(ins.instruction, frozenset())
    for f in ins.flags:
        key = f[2:].partition("=")[0]
        if key not in allowed:
            raise df.error(ins, f"unknown flag: {f.partition('=')[0]}")
    n = len(ins.args)
    name = ins.instruction
    if name in ("copy", "add") and n < 2:
        raise df.error(ins, "requires at least two arguments, but only one was provided"
                       if n == 1 else "requires at least two arguments")
    if name in ("run", "cmd", "entrypoint", "shell") and n == 0 and name != "cmd" and name != "entrypoint":
        raise df.error(ins, "requires at least one argument")
    if name == "shell" and not ins.json_form:
        raise df.error(ins, "requires the arguments to be in JSON form")
    if name in ("workdir", "user", "stopsignal", "maintainer") and n != 1:
        raise df.error(ins, "requires exactly one argument")
    if name in ("expose", "volume", "arg", "env", "label") and n == 0:
        raise df.error(ins, "requires at least one argument")
    if name == "healthcheck":
        if not ins.args or ins.args[0] not in ("NONE", "CMD"):
            raise df.error(ins, "requires NONE or CMD followed by a command")
        if ins.args[0] == "NONE" and (n > 1 or ins.flags):
            raise df.error(ins, "NONE takes no arguments or flags")
        if ins.args[0] == "CMD" and n < 2:
            raise df.error(ins, "CMD requires a command")
        for f in ins.flags:
            key, _, value = f[2:].partition("=")
            if key == "retries":
                if not value.isdigit():
                    raise df.error(ins, f"--retries must be a whole number, got {value!r}")
            elif parse_duration(value) is None:
                raise df.error(ins, f"--{key}: invalid duration {value!r}")


def parse_duration(text: str) -> float | None:
    """Go's time.ParseDuration for the units a Dockerfile uses ("30s", "1m30s", "500ms")."""
    m = re.fullmatch(r"((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+", text)
    if not m:
        return None
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(v) * units[u] for v, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


def meta_arg_env(*, meta_args: tuple[Instruction, ...], build_args: Mapping[str, str | None],
                 escape: str = "\\") -> dict[str, str]:
    """The values of ARGs before FROM (defaults overridden by --build-arg)."""
    env: dict[str, str] = {}
    for ins in meta_args:
        for word in ins.args:
            key, sep, default = word.partition("=")
            if key in build_args and build_args[key] is not None:
                env[key] = build_args[key]  # type: ignore[assignment]
            elif sep:
                env[key] = expand_word(default, env=env, escape=escape)
    return env


def validate(*, dockerfile: Dockerfile, build_args: Mapping[str, str | None] | None = None,
             target: str | None = None) -> Dockerfile:
    """Check the file and split it into stages; returns the Dockerfile with
    meta_args and stages filled (the input is frozen, so a new one)."""
    df = dockerfile
    build_args = build_args or {}
    if not df.instructions:
        raise DockerfileError(f"{df.filename}: the Dockerfile is empty (no FROM)")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: tuple[Instruction, list[Instruction]] | None = None

    def close() -> None:
        if current is None:
            return
        ins, body = current
        args = list(ins.args)
        name = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise df.error(ins, f"invalid name for build stage: {args[2]!r}, name can't start "
                               "with a number or contain symbols")
            if any(s.name == name for s in stages):
                raise df.error(ins, f"duplicate stage name {name!r}")
        elif len(args) != 1:
            raise df.error(ins, "requires either one or three arguments (FROM image [AS name])")
        stages.append(Stage(index=len(stages), name=name, base=args[0], from_instruction=ins,
                            instructions=tuple(body), platform=ins.flag("platform")))

    for ins in df.instructions:
        _check(df, ins)
        if ins.instruction == "from":
            close()
            current = (ins, [])
        elif current is None:
            if ins.instruction != "arg":
                raise df.error(ins, "no build stage in current context: the first instruction "
                               "must be FROM (only ARG may come before it)")
            meta.append(ins)
        else:
            current[1].append(ins)
    close()
    if not stages:
        raise DockerfileError(f"{df.filename}: no FROM instruction")
    env = meta_arg_env(meta_args=tuple(meta), build_args=build_args, escape=df.escape)
    for stage in stages:
        try:
            base = expand_word(stage.base, env=env, escape=df.escape)
        except SubstitutionError as exc:
            raise df.error(stage.from_instruction, str(exc)) from None
        if not base:
            raise df.error(stage.from_instruction, f"base name ({stage.base}) should not be blank")
        for ins in stage.instructions:
            if ins.instruction == "copy" and ins.flag("from") == "":
                raise df.error(ins, "--from requires a stage name, index or image")
            if ins.instruction == "copy" and ins.flag("from") is not None:
                ref = ins.flag("from") or ""
                if ref.isdigit() and int(ref) >= stage.index:
                    raise df.error(ins, f"--from={ref}: refers to a stage that is not before this one")
                if ref.lower() == (stage.name or "") :
                    raise df.error(ins, f"--from={ref}: a stage cannot copy from itself")
    if target is not None and not any(s.name == target.lower() for s in stages):
        raise DockerfileError(f"{df.filename}: target stage {target!r} could not be found")
    return Dockerfile(filename=df.filename, instructions=df.instructions, escape=df.escape,
                      directives=df.directives, meta_args=tuple(meta), stages=tuple(stages))
