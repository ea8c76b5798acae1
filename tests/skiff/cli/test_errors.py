"""Without a control plane every command fails with one line naming the
address, a non-zero exit code and no traceback; bad input fails before
anything is sent."""
from __future__ import annotations

import socket

import pytest


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there


@pytest.mark.parametrize("args", [
    ("get", "pods"),
    ("get", "nodes", "-o", "json"),
    ("describe", "pod", "hello"),
    ("delete", "pod", "hello"),
    ("logs", "hello"),
    ("exec", "hello", "--", "true"),
    ("run", "web", "--image", "busybox"),
    ("wait", "pod", "hello", "--for=condition=Ready"),
    ("version",),
])
def test_unreachable_server_is_one_line(skiff, args):
    address = dead_address()
    result = skiff(*args, server=address)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (f"error: cannot reach the Skiff API at {address} (connection refused); "
                        "is the cluster up? (skiff up)")


def test_apply_unreachable_server(skiff, tmp_path):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n")
    address = dead_address()
    result = skiff("apply", "-f", "pod.yaml", server=address)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach the Skiff API at {address} (connection refused); is the cluster up? (skiff up)"]


def test_server_from_env_and_config(skiff, tmp_path, monkeypatch):
    address = dead_address()
    (tmp_path / "skiff-config").write_text(f"server: {address}\n")
    result = skiff("get", "pods")
    assert address in result.stderr and result.returncode == 1


def test_bad_manifest_only_is_rejected_without_contacting_the_server(skiff, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
        "    resources: {limits: {memory: 12Gigs}}\n")
    result = skiff("apply", "-f", "bad.yaml", server=dead_address())
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: bad.yaml:8: document 1 of 1: spec.containers[0].resources.limits.memory: invalid quantity "
        "'12Gigs': expected a number with an optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti ...) "
        "or exponent (e3), e.g. 500m, 0.5, 128Mi, 1G"]


@pytest.mark.parametrize("value", ["1e999999", "1e9999999"])
@pytest.mark.parametrize("field, where, line", [
    ("resources: {limits: {memory: %s}}", "spec.containers[0].resources.limits.memory", 8),
    ("volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - name: v\n    emptyDir: {sizeLimit: %s}",
     "spec.volumes[0].emptyDir.sizeLimit", 11),
])
def test_a_huge_quantity_is_refused_at_once(skiff, tmp_path, value, field, where, line):
    # Once converted with an unbounded Decimal: ~25 s of CPU, or decimal.Overflow.
    (tmp_path / "big.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
        f"    {field % value}\n")
    result = skiff("apply", "-f", "big.yaml", server=dead_address())
    assert result.returncode == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: big.yaml:{line}: document 1 of 1: {where}: invalid quantity "
        f"'{value}': too large, the limit is 9223372036854775807 (2^63-1) after scaling"]


def test_missing_file(skiff):
    result = skiff("apply", "-f", "nope.yaml", server=dead_address())
    assert result.returncode == 1
    assert result.stderr.strip() == "error: nope.yaml: no such file or directory"


@pytest.mark.parametrize("args, message", [
    (("get", "widgets"), "unknown resource type 'widgets'"),
    (("exec", "pod"), "give the command after --"),
    (("run", "web", "--image", "busybox", "-p", "80:x"), "-p 80:x: expected"),
    (("run", "web", "--image", "busybox", "--limits", "memory=12Gigs"), "invalid quantity '12Gigs'"),
    (("delete",), "name what to delete"),
])
def test_usage_errors_are_one_line(skiff, args, message):
    result = skiff(*args, server=dead_address())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line


def test_help_for_every_command(capsys):
    # In-process: argparse's help is pure wiring, no need for a process per command.
    from skiff.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    top = capsys.readouterr().out
    assert exit_info.value.code == 0
    for command in ("apply", "get", "describe", "delete", "logs", "exec", "run", "wait", "up", "down", "version"):
        assert command in top
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0 and out.startswith("usage: skiff " + command), command
