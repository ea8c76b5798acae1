"""Applying Dockerfile instructions that change only the image config.

ENV, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, SHELL,
HEALTHCHECK, ONBUILD and MAINTAINER edit the OCI config (`config` section
keys as Docker writes them); the builder calls `apply_instruction` for each,
and `docker import --change` style edits go through `apply_changes`. Substitution
uses the stage's variables (ARG values overlaid by ENV), as Docker does.
"""
from __future__ import annotations

import copy
import posixpath
from typing import Mapping

from agent.images.dockerfile import Dockerfile, DockerfileError, Instruction, parse, parse_duration
from agent.images.shellwords import SubstitutionError, expand_word

DEFAULT_SHELL = ["/bin/sh", "-c"]
CONFIG_ONLY = frozenset({"env", "cmd", "entrypoint", "workdir", "user", "expose", "label",
                         "volume", "stopsignal", "shell", "healthcheck", "onbuild", "maintainer"})


def env_dict(config: dict) -> dict[str, str]:
    out = {}
    for item in (config.get("config") or {}).get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _set_env(c: dict, key: str, value: str) -> None:
    env = [e for e in c.get("Env") or [] if e.partition("=")[0] != key]
    env.append(f"{key}={value}")
    c["Env"] = env


def _shell_form(c: dict, ins: Instruction) -> list[str]:
    if ins.json_form:
        return list(ins.args)
    shell = c.get("Shell") or DEFAULT_SHELL
    return [*shell, ins.args[0]] if ins.args else []


def apply_instruction(*, config: dict, ins: Instruction, variables: Mapping[str, str],
                      escape: str = "\\", cmd_set_in_stage: bool = True,
                      df: Dockerfile | None = None) -> dict:
    """A new config with `ins` applied. `variables`: what $V expands to here.
    `cmd_set_in_stage`: whether CMD was set in this stage (ENTRYPOINT resets an
    inherited CMD, as Docker does)."""
    config = copy.deepcopy(config)
    c = config.setdefault("config", {})
    name = ins.instruction

    def err(message: str) -> DockerfileError:
        if df is not None:
            return df.error(ins, message)
        return DockerfileError(f"{name.upper()}: {message}")

    def ex(word: str) -> str:
        try:
            return expand_word(word, env=variables, escape=escape)
        except SubstitutionError as exc:
            raise err(str(exc)) from None

    if name == "env":
        pairs = list(zip(ins.args[0::2], ins.args[1::2]))
        # All values see the variables from before this instruction (Docker's rule).
        for key, value in [(ex(k), ex(v)) for k, v in pairs]:
            _set_env(c, key, value)
    elif name == "cmd":
        c["Cmd"] = _shell_form(c, ins)
    elif name == "entrypoint":
        c["Entrypoint"] = _shell_form(c, ins) if ins.args or ins.json_form else None
        if not cmd_set_in_stage:
            c["Cmd"] = None
    elif name == "workdir":
        path = ex(ins.args[0])
        c["WorkingDir"] = posixpath.normpath(posixpath.join(c.get("WorkingDir") or "/", path))
    elif name == "user":
        c["User"] = ex(ins.args[0])
    elif name == "expose":
        ports = dict(c.get("ExposedPorts") or {})
        for word in ins.args:
            port = ex(word)
            num, _, proto = port.partition("/")
            proto = (proto or "tcp").lower()
            if not num.replace("-", "").isdigit() or proto not in ("tcp", "udp", "sctp"):
                raise err(f"invalid port {port!r}")
            ports[f"{num}/{proto}"] = {}
        c["ExposedPorts"] = ports
    elif name == "label":
        labels = dict(c.get("Labels") or {})
        for k, v in zip(ins.args[0::2], ins.args[1::2]):
            labels[ex(k)] = ex(v)
        c["Labels"] = labels
    elif name == "volume":
        vols = dict(c.get("Volumes") or {})
        for word in ins.args:
            path = ex(word)
            if not path:
                raise err("VOLUME specified can not be an empty string")
            vols[path] = {}
        c["Volumes"] = vols
    elif name == "stopsignal":
        c["StopSignal"] = ex(ins.args[0])
    elif name == "shell":
        c["Shell"] = list(ins.args)
    elif name == "healthcheck":
        if ins.args[0] == "NONE":
            c["Healthcheck"] = {"Test": ["NONE"]}
        else:
            test = ["CMD", *ins.args[1:]] if ins.json_form else ["CMD-SHELL", ins.args[1]]
            hc: dict = {"Test": test}
            keys = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                    "start-interval": "StartInterval"}
            for f in ins.flags:
                k, _, v = f[2:].partition("=")
                if k == "retries":
                    hc["Retries"] = int(v)
                else:
                    hc[keys[k]] = int((parse_duration(v) or 0) * 1e9)
            c["Healthcheck"] = hc
    elif name == "onbuild":
        c["OnBuild"] = [*(c.get("OnBuild") or []), ins.args[0]]
    elif name == "maintainer":
        config["author"] = ins.args[0]
    else:
        raise err("not a config-only instruction")
    return config


def apply_changes(*, config: dict, changes: tuple[str, ...]) -> dict:
    """`docker import --change 'CMD ["sh"]'`: each change is one Dockerfile line."""
    for text in changes:
        df = parse(text=text, filename="--change")
        for ins in df.instructions:
            if ins.instruction not in CONFIG_ONLY:
                raise DockerfileError(f"--change: {ins.instruction.upper()} is not supported "
                                      f"(only config instructions: CMD, ENV, ...)")
            config = apply_instruction(config=config, ins=ins, variables=env_dict(config))
    return config
