"""The parts of commands that need no server, in-process: the Pod `skiff run`
builds, `skiff wait` conditions, and argument splitting at `--`."""
from __future__ import annotations

import argparse

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import kinds
from skiff.cli import main as cli_main
from skiff.cli._common import CliError
from skiff.cli.run import build_pod
from skiff.cli.wait import predicate


def parse(*argv: str) -> argparse.Namespace:
    return cli_main.parse_args(argv)


def test_run_builds_a_kubectl_run_pod():
    pod = build_pod(parse("run", "web", "--image", "my-web:1", "-p", "5000:5000", "-p", "127.0.0.1:8080:80",
                          "-p", "9000", "-e", "MODE=prod", "--restart", "OnFailure",
                          "--limits", "cpu=1,memory=256Mi", "--requests", "cpu=100m", "-n", "team",
                          "--", "python3", "/app.py"))
    assert pod.metadata.name == "web" and pod.metadata.namespace == "team"
    assert dict(pod.metadata.labels) == {"run": "web"}
    assert pod.spec.restart_policy == "OnFailure"
    [c] = pod.spec.containers
    assert (c.name, c.image, list(c.args), list(c.command)) == ("web", "my-web:1", ["python3", "/app.py"], [])
    assert [(p.container_port, p.host_port, p.host_ip, p.protocol) for p in c.ports] == [
        (5000, 5000, "", "TCP"), (80, 8080, "127.0.0.1", "TCP"), (9000, 0, "", "TCP")]
    assert [(e.name, e.value) for e in c.env] == [("MODE", "prod")]
    assert dict(c.resources.limits) == {"cpu": "1", "memory": "256Mi"}
    assert dict(c.resources.requests) == {"cpu": "100m"}


def test_run_command_flag_sets_the_entrypoint():
    pod = build_pod(parse("run", "x", "--image", "busybox", "--command", "--", "sleep", "5"))
    assert list(pod.spec.containers[0].command) == ["sleep", "5"] and not pod.spec.containers[0].args


@pytest.mark.parametrize("argv, message", [
    (("-p", "70000:80"), "host port 70000"),
    (("-e", "NOVALUE"), "expected K=V"),
    (("--limits", "cpu"), "expected KEY=VALUE"),
])
def test_run_rejects_bad_flags(argv, message):
    with pytest.raises(CliError, match=message):
        build_pod(parse("run", "x", "--image", "busybox", *argv))


def pod_with(phase: str, ready: str | None = None) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = "p"
    p.status.phase = phase
    if ready:
        p.status.conditions.add(type="Ready", status=ready)
    return p


def test_wait_predicates():
    ready = predicate("condition=Ready")
    assert ready(pod_with("Running", "True")) and not ready(pod_with("Running", "False")) and not ready(None)
    assert predicate("condition=Ready=False")(pod_with("Running", "False"))
    phase = predicate("jsonpath={.status.phase}=Succeeded")
    assert phase(pod_with("Succeeded")) and not phase(pod_with("Running"))
    assert predicate("jsonpath=.status.phase=Running")(pod_with("Running"))
    assert predicate("jsonpath={.metadata.name}=p")(pod_with("Running"))
    # kubectl's JSONPath, filters included, and the value-less form: the field is set
    ready_by_filter = predicate('jsonpath={.status.conditions[?(@.type=="Ready")].status}=True')
    assert ready_by_filter(pod_with("Running", "True")) and not ready_by_filter(pod_with("Running", "False"))
    has_conditions = predicate("jsonpath={.status.conditions}")
    assert has_conditions(pod_with("Running", "False")) and not has_conditions(pod_with("Running"))
    with pytest.raises(CliError, match="jsonpath"):
        predicate("jsonpath={.status[?(@.x==}=1")
    assert predicate("delete")(None) and not predicate("delete")(pod_with("Running"))
    with pytest.raises(CliError):
        predicate("ready")


def test_exec_takes_everything_after_double_dash(capsys):
    args = parse("exec", "-i", "web", "-c", "main", "--", "sh", "-c", "echo -n hi", "--", "x")
    assert (args.pod, args.container, args.stdin, args.trailing) == ("web", "main", True,
                                                                    ["sh", "-c", "echo -n hi", "--", "x"])


def test_double_dash_is_refused_where_no_command_is_taken(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["get", "pods", "--", "x"])
    assert exit_info.value.code == 2
    assert "`skiff get` takes no command after --" in capsys.readouterr().err


def test_every_kind_has_a_resource_name_the_cli_accepts():
    from skiff.cli._common import kind_arg

    for kind in kinds.KINDS:
        assert kind_arg(kind.resource) is kind
    with pytest.raises(CliError, match="unknown resource type 'statefulsets'"):
        kind_arg("statefulsets")


def test_exec_tty_puts_the_terminal_in_raw_mode_and_restores_it(monkeypatch):
    import os
    import pty
    import termios

    from skiff.cli import exec as exec_cmd

    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "r") as fake_stdin:
            monkeypatch.setattr("sys.stdin", fake_stdin)
            before = termios.tcgetattr(slave)
            assert before[3] & termios.ECHO and before[3] & termios.ICANON
            with exec_cmd._raw_terminal(enabled=True):
                raw = termios.tcgetattr(slave)
                assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
