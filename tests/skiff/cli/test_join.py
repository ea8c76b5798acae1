"""`skiff join`'s install step (skiff/cli/join.py, decision 36) without a cluster: with systemd
it copies the unit and runs `systemctl enable --now`; if systemd refuses, everything it wrote is
removed and the settings file is as before (a failed join leaves no unit, no key). A fake
`systemctl` on PATH stands in for systemd, which is not PID 1 here."""
from __future__ import annotations

import argparse
import os
import stat

import pytest

from skiff.cli import join
from skiff.cli._common import CliError

JOINED = join.Joined(api_server="10.0.0.10:6443", ca=b"CA", cert=b"CERT", key=b"KEY", request=b"CSR")


def _args(tmp_path, *, no_start: bool) -> argparse.Namespace:
    return argparse.Namespace(data_dir=str(tmp_path / "data"), env_file=str(tmp_path / "default" / "skiff"),
                              unit_dir=str(tmp_path / "units"), no_start=no_start)


def _fake_systemctl(tmp_path, monkeypatch, *, fail_on: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                      f'case "$*" in *"{fail_on}"*) echo "Failed to start skiff-agent.service" >&2; exit 1;; esac\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_the_files_and_the_unit_are_installed_and_started(tmp_path, monkeypatch):
    log = _fake_systemctl(tmp_path, monkeypatch, fail_on="never")
    args = _args(tmp_path, no_start=False)
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "skiff").write_text("SKIFF_NODE_IP=old\nOTHER=kept\n")
    command = join.install(args, JOINED, "n2", "10.0.0.11")
    pki = tmp_path / "data" / "pki"
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in pki.iterdir()} == {
        "ca.crt": 0o600, "node.key": 0o600, "node.csr": 0o600, "node.crt": 0o600}
    settings = (tmp_path / "default" / "skiff").read_text().splitlines()
    assert settings[0] == "OTHER=kept" and "SKIFF_SERVER=10.0.0.10:6443" in settings
    assert "SKIFF_NODE_IP=10.0.0.11" in settings
    assert any(s.startswith("SKIFF_AGENT_ARGS='--client-ca-file ") and "--rotate-certificates" in s for s in settings)
    assert (tmp_path / "units" / "skiff-agent.service").read_text() == join._unit_source().read_text()
    assert log.read_text().splitlines() == ["daemon-reload", "enable --now skiff-agent.service"]
    assert command[:3] == ["skiff-agent", "--server", "10.0.0.10:6443"]


def test_a_refused_start_leaves_nothing(tmp_path, monkeypatch):
    log = _fake_systemctl(tmp_path, monkeypatch, fail_on="enable")
    args = _args(tmp_path, no_start=False)
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "skiff").write_text("OTHER=kept\n")
    with pytest.raises(CliError, match="systemctl enable --now skiff-agent.service failed: Failed to start"):
        join.install(args, JOINED, "n2", "10.0.0.11")
    assert list((tmp_path / "data" / "pki").iterdir()) == []
    assert not (tmp_path / "units" / "skiff-agent.service").exists()
    assert (tmp_path / "default" / "skiff").read_text() == "OTHER=kept\n"
    assert "disable --now skiff-agent.service" in log.read_text()


def test_no_start_touches_no_systemd(tmp_path, monkeypatch):
    log = _fake_systemctl(tmp_path, monkeypatch, fail_on="never")
    join.install(_args(tmp_path, no_start=True), JOINED, "n2", "10.0.0.11")
    assert (tmp_path / "data" / "pki" / "node.crt").read_bytes() == b"CERT"
    assert not (tmp_path / "units").exists() and not log.exists()


@pytest.mark.parametrize("argv,message", [
    (["join", "h:1", "--token", "nope", "--discovery-token-ca-cert-hash", "sha256:" + "0" * 64],
     'error: --token: the token "<redacted>" is not of the form'),
    (["join", "h:1", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", "md5:00"],
     'error: --discovery-token-ca-cert-hash "md5:00": expected "sha256:" and 64 hex digits'),
])
def test_bad_arguments_are_named(argv, message, capsys):
    from skiff.cli.main import main
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(message)
