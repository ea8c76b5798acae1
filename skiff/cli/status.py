"""`skiff status`: each part of the all-in-one cluster `skiff up` runs here —
pid, health, restarts (counted by the supervisor), address and log file.

Exit status 0 when every component runs and is healthy (the agent's node
Ready) and the supervisor runs, 1 otherwise, so a script can wait on it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from skiff.cli._cluster import ClusterConfig, components, health, load_config, running_pid
from skiff.cli._common import CliError
from skiff.cli._supervisor import read_state, supervisor_pid

COLUMNS = ("COMPONENT", "PID", "HEALTH", "RESTARTS", "ADDRESS", "LOG")


def _state_for(config: ClusterConfig, pids: dict[str, int | None], *, wait: float = 2.0) -> dict[str, dict]:
    """The supervisor's counts for the processes now running: it writes a restarted
    component's pid file, then its state, so a look in between would pair the new pid
    with the old count; read again until each running pid is the one the state is for
    (a state without pids, from an older supervisor, is taken as it is)."""
    deadline = time.monotonic() + wait
    while True:
        state = read_state(config)
        stale = [name for name, pid in pids.items()
                 if pid is not None and state.get(name, {}).get("pid", pid) != pid]
        if not stale or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def status_rows(config: ClusterConfig) -> list[dict]:
    sup = supervisor_pid(config)
    rows = [{"component": "supervisor", "pid": sup, "health": "running" if sup else "down",
             "restarts": None, "address": None, "log": str(config.log_dir / "supervisor.log")}]
    pids = {component.name: running_pid(config, component) for component in components(config)}
    state = _state_for(config, pids) if sup else read_state(config)
    for component in components(config):
        pid = pids[component.name]
        saved = state.get(component.name, {})
        extra = {"pod_egress": config.pod_egress} if component.is_agent else {}
        rows.append({"component": component.name, "pid": pid, **extra,
                     "health": health(config, component) if pid else "down",
                     "restarts": int(saved.get("restarts", 0)), "last_exit": saved.get("last_exit") or None,
                     "address": component.address, "log": str(config.log_dir / f"{component.name}.log")})
    return rows


def status(config: ClusterConfig, *, output: str) -> int:
    recorded = load_config(config)
    if recorded is config:
        raise CliError(f"no cluster was started from {config.data_dir} (no {config.pid_dir / 'cluster.json'}); "
                       "`skiff up` starts one")
    rows = status_rows(recorded)
    if output == "json":
        print(json.dumps(rows, indent=2))
    else:
        table = [COLUMNS] + [(r["component"], str(r["pid"] or "-"), r["health"],
                              "-" if r["restarts"] is None else str(r["restarts"]),
                              r["address"] or "-", r["log"]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
        for row in table:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "   " + row[-1])
        if any(c.is_agent for c in components(recorded)):
            print(f"pod egress: {recorded.pod_egress}")
    fine = all(r["health"] in ("running", "healthy", "Ready") for r in rows)
    return 0 if fine else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status", help="show the all-in-one cluster's components",
        description="Show each process `skiff up` runs on this machine (supervisor, etcd, control plane, "
                    "agent): pid, health, restarts, address and log file. Exits 1 unless all run and are "
                    "healthy.")
    p.add_argument("--data-dir", type=Path, default=Path("/var/lib/skiff"), metavar="DIR",
                   help="the cluster's data directory (default /var/lib/skiff)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    config = ClusterConfig(data_dir=args.data_dir.absolute(), run_dir=Path("/run/skiff"), node_name="")
    return status(config, output=args.output)
