"""The supervisor's loop (skiff/cli/_supervisor.py) with a fake clock, fake
pid files and fake starts: what it logs, when it restarts, what it counts.
The real processes are exercised by tests/e2e/test_supervise.py."""
from __future__ import annotations

import json
import signal
import threading

from skiff.cli._cluster import AlreadyRunning, ClusterConfig
from skiff.cli._supervisor import RESET_AFTER, Supervisor, read_state
from skiff.cli.status import _state_for
from skiff.retry import Backoff


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int | None:
        return self.returncode


class Node:
    """Pid files and starts, as the supervisor sees them."""

    def __init__(self) -> None:
        self.pids = {"etcd": 10, "controlplane": 11, "agent": 12}
        self.procs: dict[str, FakeProc] = {}
        self.started: list[str] = []
        self.fail_with: Exception | None = None
        self.now = 0.0

    def pid_of(self, _config, component) -> int | None:
        return self.pids.get(component.name)

    def start(self, _config, component) -> FakeProc:
        if self.fail_with is not None:
            raise self.fail_with
        proc = FakeProc(100 + len(self.started))
        self.started.append(component.name)
        self.pids[component.name] = proc.pid
        self.procs[component.name] = proc
        return proc

    def kill(self, name: str, returncode: int = -signal.SIGKILL) -> None:
        if name in self.procs:
            self.procs[name].returncode = returncode
        del self.pids[name]


def supervisor(tmp_path, node: Node, logs: list[str]) -> Supervisor:
    config = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "volatile", node_name="n")
    config.pid_dir.mkdir()
    return Supervisor(config, log=logs.append, clock=lambda: node.now,
                      backoff=Backoff(initial=1.0, maximum=8.0, jitter=False), pid_of=node.pid_of, start=node.start)


def test_an_exited_component_is_restarted_after_back_off_and_counted(tmp_path):
    node, logs = Node(), []
    sup = supervisor(tmp_path, node, logs)
    sup.tick()
    assert logs == [] and node.started == []

    node.kill("agent")      # started by `skiff up`: not our child, no exit status
    sup.tick()
    assert logs == ["agent (pid 12) exited; restarting in 1.0s (restart 1)"]
    node.now = 0.9
    sup.tick()
    assert node.started == []
    node.now = 1.0
    sup.tick()
    assert node.started == ["agent"] and logs[-1] == "agent restarted (pid 100, restart 1)"
    assert read_state(sup.config)["agent"] == {"restarts": 1, "last_exit": "exited", "pid": 100}

    node.kill("agent")      # our child now: its status is known; the back-off doubles
    node.now = 2.0
    sup.tick()
    assert logs[-1] == "agent (pid 100) killed by SIGKILL; restarting in 2.0s (restart 2)"
    node.now = 4.0
    sup.tick()
    assert node.started == ["agent", "agent"]
    assert read_state(sup.config)["agent"] == {"restarts": 2, "last_exit": "killed by SIGKILL", "pid": 101}

    node.now = 4.0 + RESET_AFTER + 1   # up long enough: the back-off starts again from its first step
    sup.tick()
    node.kill("agent", returncode=1)
    sup.tick()
    assert logs[-1] == "agent (pid 101) exit code 1; restarting in 1.0s (restart 3)"
    assert read_state(sup.config)["etcd"] == {"restarts": 0, "last_exit": "", "pid": 10}


def test_a_component_started_by_someone_else_is_adopted_not_started_twice(tmp_path):
    node, logs = Node(), []
    sup = supervisor(tmp_path, node, logs)
    node.kill("etcd")
    sup.tick()
    node.pids["etcd"] = 555           # `skiff up` got there first
    node.now = 5.0
    sup.tick()
    assert node.started == []
    assert logs[-1] == "etcd is running again (pid 555), started by another skiff up"
    assert read_state(sup.config)["etcd"]["restarts"] == 1

    node.kill("controlplane")
    sup.tick()
    node.fail_with = AlreadyRunning(777)   # lost the race inside the lock: nothing started
    node.now = 6.0
    sup.tick()
    assert node.started == [] and read_state(sup.config)["controlplane"]["restarts"] == 0


def test_a_component_that_cannot_be_run_is_tried_again(tmp_path):
    node, logs = Node(), []
    sup = supervisor(tmp_path, node, logs)
    node.kill("etcd")
    sup.tick()
    node.fail_with = FileNotFoundError(2, "No such file or directory")
    node.now = 1.0
    sup.tick()
    assert logs[-1] == "cannot start etcd: No such file or directory; trying again in 2.0s"
    node.fail_with = None
    node.now = 2.9
    sup.tick()
    assert node.started == []
    node.now = 3.0
    sup.tick()
    assert node.started == ["etcd"]


def test_nodes_added_and_removed_by_skiff_node_are_watched_and_dropped(tmp_path):
    """`skiff node add` starts the agent, then records the node; `node remove`
    drops the record, then stops it: neither is ever taken for an exit."""
    node, logs = Node(), []
    config = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "volatile", node_name="", nodes=(1, 2))
    config.pid_dir.mkdir()
    recorded = {"config": config}
    node.pids = {"etcd": 10, "controlplane": 11, "agent-skiff-node-1": 21, "agent-skiff-node-2": 22}
    sup = Supervisor(config, log=logs.append, clock=lambda: node.now, backoff=Backoff(initial=1.0, jitter=False),
                     pid_of=node.pid_of, start=node.start, reload=lambda _c: recorded["config"])
    sup.tick()
    node.pids["agent-skiff-node-3"] = 23                       # node add: running, then recorded
    recorded["config"] = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "volatile", node_name="",
                                       nodes=(1, 2, 3))
    sup.tick()
    recorded["config"] = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "volatile", node_name="",
                                       nodes=(1, 3))             # node remove: unrecorded, then stopped
    sup.tick()
    del node.pids["agent-skiff-node-2"]
    sup.tick()
    assert logs == [] and node.started == []
    assert set(read_state(sup.config)) == {"etcd", "controlplane", "agent-skiff-node-1", "agent-skiff-node-3"}
    node.kill("agent-skiff-node-3")                              # a recorded node that exits is restarted
    sup.tick()
    assert logs == ["agent-skiff-node-3 (pid 23) exited; restarting in 1.0s (restart 1)"]


def test_status_pairs_a_restarted_pid_with_its_own_count(tmp_path):
    """The supervisor writes a restarted component's pid file, then its state: `skiff status`
    looking in between showed the new pid with the old restart count (CI, test_supervise:
    restarts 1 for 2). It reads the state again until the state is for the pids it saw."""
    config = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "volatile", node_name="n")
    config.pid_dir.mkdir()
    path = config.pid_dir / "supervisor.json"

    def write(restarts: int, pid: int) -> None:
        path.write_text(json.dumps({"components": {"agent": {"restarts": restarts, "last_exit": "exited",
                                                             "pid": pid}}}))
    write(1, 100)
    late = threading.Timer(0.3, write, (2, 101))
    late.start()
    try:
        assert _state_for(config, {"agent": 101})["agent"]["restarts"] == 2
    finally:
        late.cancel()
    # A pid the supervisor never writes about (it is not running) does not hold status up for long.
    assert _state_for(config, {"agent": 555}, wait=0.2)["agent"]["restarts"] == 2
    # A component that is down, and a state from an older supervisor without pids: taken as they are.
    assert _state_for(config, {"agent": None}, wait=60)["agent"]["restarts"] == 2
    path.write_text(json.dumps({"components": {"agent": {"restarts": 3}}}))
    assert _state_for(config, {"agent": 102}, wait=60)["agent"]["restarts"] == 3
