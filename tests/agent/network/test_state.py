"""IPAM and the persisted state: allocation order, exhaustion, locking across processes."""
from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from agent.network.state import (
    NetworkState, PodRecord, StateLock, load_state, save_state,
)
from agent.network.types import NetworkError, PortMapping


def test_allocation_skips_network_gateway_and_broadcast_and_wraps():
    state = NetworkState(pod_cidr="10.9.0.0/29")  # hosts .1-.6, .1 is the gateway
    got = []
    for i in range(5):
        ip = state.allocate_pod_ip()
        state.pods[f"p{i}"] = PodRecord(ip=ip, veth=f"v{i}")
        got.append(ip)
    assert got == [f"10.9.0.{n}" for n in range(2, 7)]
    with pytest.raises(NetworkError, match="10.9.0.0/29 is exhausted"):
        state.allocate_pod_ip()
    del state.pods["p1"]  # frees 10.9.0.3
    assert state.allocate_pod_ip() == "10.9.0.3"


def test_released_address_is_not_reused_at_once():
    state = NetworkState(pod_cidr="10.9.0.0/24")
    first = state.allocate_pod_ip()
    second = state.allocate_pod_ip()
    assert first != second and ipaddress.IPv4Address(second) in ipaddress.IPv4Network("10.9.0.0/24")


def test_state_round_trips_through_the_file(tmp_path):
    state = NetworkState(pod_cidr="10.9.0.0/24")
    ip = state.allocate_pod_ip()
    state.pods["uid-1"] = PodRecord(ip=ip, veth="skiffvdeadbeef",
                                    ports=[PortMapping(host_port=5000, container_port=80, protocol="UDP")])
    save_state(state_dir=tmp_path, state=state)
    again = load_state(state_dir=tmp_path, pod_cidr="10.9.0.0/24")
    assert again.pods == state.pods and again.last_allocated == ip
    assert [p.name for p in tmp_path.iterdir()] == ["pods.json"]  # no temp file left behind


def test_a_different_pod_cidr_with_live_allocations_is_an_error(tmp_path):
    state = NetworkState(pod_cidr="10.9.0.0/24")
    state.pods["uid-1"] = PodRecord(ip=state.allocate_pod_ip(), veth="v")
    save_state(state_dir=tmp_path, state=state)
    with pytest.raises(NetworkError, match="10.9.0.0/24.*10.8.0.0/24"):
        load_state(state_dir=tmp_path, pod_cidr="10.8.0.0/24")
    state.pods.clear()
    save_state(state_dir=tmp_path, state=state)
    assert load_state(state_dir=tmp_path, pod_cidr="10.8.0.0/24").pods == {}


def test_a_corrupt_state_file_is_reported_with_its_path(tmp_path):
    (tmp_path / "pods.json").write_text("{not json")
    with pytest.raises(NetworkError, match=str(tmp_path / "pods.json")):
        load_state(state_dir=tmp_path, pod_cidr="10.9.0.0/24")


def test_an_unreadable_state_file_from_before_this_boot_is_an_empty_state(tmp_path):
    # The file is not fsynced: a power loss may leave it torn, and what it described
    # (veths, addresses, hostPort rules) is gone with the reboot anyway.
    path = tmp_path / "pods.json"
    path.write_text("")
    os.utime(path, (1_000_000, 1_000_000))   # 1970: before any boot of this machine
    state = load_state(state_dir=tmp_path, pod_cidr="10.9.0.0/24")
    assert state.pods == {} and state.pod_cidr == "10.9.0.0/24"
    os.utime(path)                            # now: written since this boot, so a real error
    with pytest.raises(NetworkError, match="cannot read pod network state"):
        load_state(state_dir=tmp_path, pod_cidr="10.9.0.0/24")


def _allocate_many(state_dir: str, tag: str, count: int) -> None:
    # Through the lock's load/save: each process keeps what it saved, so this also
    # proves a process reads the file again once another one has written it.
    for i in range(count):
        with StateLock(Path(state_dir)) as lock:
            state = lock.load(pod_cidr="10.9.0.0/22")
            state.pods[f"{tag}-{i}"] = PodRecord(ip=state.allocate_pod_ip(), veth=f"{tag}{i}")
            lock.save(state)


def test_concurrent_processes_never_share_an_address(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_allocate_many, args=(str(tmp_path), f"w{n}", 25)) for n in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    pods = json.loads((tmp_path / "pods.json").read_text())["pods"]
    assert len(pods) == 75
    assert len({rec["ip"] for rec in pods.values()}) == 75


def _record(state_dir: Path, pod_id: str) -> None:
    with StateLock(state_dir) as lock:
        state = lock.load(pod_cidr="10.9.0.0/24")
        state.pods[pod_id] = PodRecord(ip=state.allocate_pod_ip(), veth=pod_id)
        lock.save(state)


def _pods(state_dir: Path) -> set[str]:
    with StateLock(state_dir) as lock:
        return set(lock.load(pod_cidr="10.9.0.0/24").pods)


def test_a_change_to_the_loaded_state_is_kept_only_by_saving_it(tmp_path):
    _record(tmp_path, "a")
    with pytest.raises(RuntimeError):
        with StateLock(tmp_path) as lock:
            lock.load(pod_cidr="10.9.0.0/24").pods["failed"] = PodRecord(ip="10.9.0.99", veth="failed")
            raise RuntimeError("the attach failed before it saved")
    assert _pods(tmp_path) == {"a"}
    with StateLock(tmp_path) as lock:
        lock.load(pod_cidr="10.9.0.0/24").pods["unsaved"] = PodRecord(ip="10.9.0.98", veth="unsaved")
    assert _pods(tmp_path) == {"a"}


def test_a_write_by_another_process_is_read_not_the_state_this_one_saved(tmp_path):
    _record(tmp_path, "mine")
    worker = multiprocessing.get_context("spawn").Process(target=_record, args=(tmp_path, "theirs"))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert _pods(tmp_path) == {"mine", "theirs"}
    assert set(json.loads((tmp_path / "pods.json").read_text())["pods"]) == {"mine", "theirs"}
