"""The all-in-one cluster's supervisor: restarts a component that exits.

`skiff up` starts etcd, the control plane and the agent, each in its own
session; then, with --detach, it starts this module as a process of its own
(`python -m skiff.cli._supervisor --data-dir DATA`, pid in
DATA/run/supervisor.pid, log DATA/logs/supervisor.log) and exits. In the
foreground `up` runs the same loop itself. k3s leaves this job to systemd;
the all-in-one has no service manager beneath it, so it brings its own.

    component running ──exits/killed──▶ exit logged, restart due after back-off
          ▲                                         │ (skiff.retry.Backoff; the
          └──────── start_component (flock) ◀───────┘  attempt count resets after
                                                       RESET_AFTER seconds up)

It watches components through their pid files (PID plus start time), not
as their parent: the processes `up` started are not its children. A
component it started itself is its child, and it is reaped. Every restart
is counted in DATA/run/supervisor.json (which `skiff status` shows) and
logged. Starts go through `start_component`, under a lock, so a `skiff up`
running at the same time never starts a second copy.

SIGTERM stops the supervisor alone: the components keep running. `skiff
down` stops the supervisor first, then the components, so nothing it stops
is started again.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skiff.cli._cluster import (AlreadyRunning, ClusterConfig, Component, component_env, components,
                                load_config, running_pid, start_component)
from skiff.cli._processes import read_pid_file, write_pid_file
from skiff.retry import Backoff

BACKOFF = Backoff(initial=1.0, maximum=30.0)
RESET_AFTER = 60.0   # seconds up after which a component's back-off starts again from the first step
MARKER = "skiff"     # in the supervisor's command line: `skiff up` (foreground) or this module


@dataclass
class ComponentState:
    pid: int | None = None
    restarts: int = 0
    last_exit: str = ""          # "killed by SIGKILL", "exit code 1", "exited" (not our child: no status)
    attempt: int = 0             # consecutive restarts, for the back-off
    up_since: float = 0.0        # monotonic
    restart_at: float | None = None  # monotonic; set while a restart is due


def state_path(config: ClusterConfig) -> Path:
    return config.pid_dir / "supervisor.json"


def supervisor_pid(config: ClusterConfig) -> int | None:
    return read_pid_file(config.pid_dir / "supervisor.pid", marker=MARKER)


def read_state(config: ClusterConfig) -> dict[str, dict]:
    """Per component: restarts, last_exit and the pid they go with, as the supervisor last wrote them."""
    try:
        return json.loads(state_path(config).read_text()).get("components", {})
    except (OSError, ValueError, AttributeError):
        return {}


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Supervisor:
    def __init__(self, config: ClusterConfig, *, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, backoff: Backoff = BACKOFF,
                 pid_of: Callable[[ClusterConfig, Component], int | None] = running_pid,
                 start: Callable[[ClusterConfig, Component], subprocess.Popen] = start_component,
                 reload: Callable[[ClusterConfig], ClusterConfig] = load_config) -> None:
        """`pid_of` and `start` are the pid-file reader and the locked start,
        `reload` re-reads the recorded configuration (`skiff node add|remove`
        change its nodes); tests give fakes, with a fake clock and a back-off
        without jitter."""
        self.reload = reload
        self.config = config
        self.log = log
        self.clock = clock
        self.backoff = backoff
        self.pid_of = pid_of
        self.start = start
        self.children: dict[str, subprocess.Popen] = {}
        self.retired: list[subprocess.Popen] = []
        self.states: dict[str, ComponentState] = {}
        recorded = read_state(config)
        now = clock()
        for component in components(config):
            saved = recorded.get(component.name, {})
            self.states[component.name] = ComponentState(
                pid=pid_of(config, component), restarts=int(saved.get("restarts", 0)),
                last_exit=str(saved.get("last_exit", "")), up_since=now)
        self.save()

    def adopt(self, component: Component, proc: subprocess.Popen) -> None:
        """A process the caller started (foreground `up`): reap it when it ends."""
        self.children[component.name] = proc

    def tick(self) -> None:
        """One look at every component: note exits, start what is due."""
        self.config = self.reload(self.config)
        wanted = components(self.config)
        changed = False
        for gone in set(self.states) - {c.name for c in wanted}:   # a node removed
            del self.states[gone]
            if (proc := self.children.pop(gone, None)) is not None:
                self.retired.append(proc)   # `skiff node remove` stops it; reaped below
            changed = True
        self.retired = [proc for proc in self.retired if proc.poll() is None]
        for component in wanted:
            if component.name not in self.states:   # a node added (started by `skiff node add`)
                self.states[component.name] = ComponentState(pid=self.pid_of(self.config, component),
                                                             up_since=self.clock())
                changed = True
            changed |= self._check(component)
        if changed:
            self.save()

    def _check(self, component: Component) -> bool:
        state = self.states[component.name]
        now = self.clock()
        pid = self.pid_of(self.config, component)
        if pid is not None:
            if pid != state.pid:   # started by someone else (`skiff up`) while it was down
                self.log(f"{component.name} is running again (pid {pid}), started by another skiff up")
                if state.pid is None and state.restart_at is not None:
                    state.restarts += 1
                state.pid, state.restart_at, state.up_since = pid, None, now
                return True
            if state.attempt and now - state.up_since > RESET_AFTER:
                state.attempt = 0
            return False
        if state.restart_at is None:
            proc = self.children.pop(component.name, None)
            state.last_exit = describe_exit(proc.wait() if proc is not None else None)
            delay = self.backoff.delay(state.attempt)
            state.restart_at = now + delay
            what = f"(pid {state.pid}) {state.last_exit}" if state.pid is not None else "is not running"
            self.log(f"{component.name} {what}; restarting in {delay:.1f}s (restart {state.restarts + 1})")
            state.pid = None
            return True
        if now < state.restart_at:
            return False
        try:
            proc = self.start(self.config, component)
        except AlreadyRunning:
            return False   # seen as "started by someone else" at the next tick
        except OSError as exc:
            state.attempt += 1
            delay = self.backoff.delay(state.attempt)
            state.restart_at = now + delay
            self.log(f"cannot start {component.name}: {exc.strerror or exc}; trying again in {delay:.1f}s")
            return False
        self.children[component.name] = proc
        state.restarts += 1
        state.attempt += 1
        state.pid, state.restart_at, state.up_since = proc.pid, None, now
        self.log(f"{component.name} restarted (pid {proc.pid}, restart {state.restarts})")
        return True

    def save(self) -> None:
        data = {"components": {name: {"restarts": s.restarts, "last_exit": s.last_exit, "pid": s.pid}
                               for name, s in self.states.items()}}
        tmp = state_path(self.config).with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, state_path(self.config))

    def run(self, *, stopping: Callable[[], bool], interval: float = 0.5) -> None:
        while not stopping():
            self.tick()
            time.sleep(interval)


def start_detached(config: ClusterConfig) -> int:
    """Start the supervisor as its own process (a session of its own); its pid."""
    with open(config.log_dir / "supervisor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "skiff.cli._supervisor", "--data-dir", str(config.data_dir)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=config.data_dir, env=component_env(), start_new_session=True)
    # Written here as well as by the process: `up` returns with the pid file in place.
    write_pid_file(config.pid_dir / "supervisor.pid", proc.pid)
    return proc.pid


def _log(message: str) -> None:
    print(time.strftime("%Y-%m-%dT%H:%M:%S%z"), message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skiff-supervisor")
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    base = ClusterConfig(data_dir=args.data_dir.absolute(), run_dir=Path("/run/skiff"), node_name="")
    config = load_config(base)
    if config is base:
        print(f"no cluster recorded in {base.pid_dir / 'cluster.json'}", file=sys.stderr)
        return 1
    stop = False

    def terminate(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True   # checked between starts, so a start and its pid file are never cut apart

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    write_pid_file(config.pid_dir / "supervisor.pid", os.getpid())
    _log(f"supervising {', '.join(c.name for c in components(config))} (pid {os.getpid()})")
    Supervisor(config, log=_log).run(stopping=lambda: stop)
    _log("stopped; the components keep running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
