"""`skiff token` (skiff/cli/token.py, decision 36): bad input refused before any call, named as
kubeadm would; the Secret a token becomes; kubeadm's TTL column."""
from __future__ import annotations

import argparse
import datetime

import pytest

from skiff import bootstraptoken as bt
from skiff.cli import token


@pytest.mark.parametrize("argv,message", [
    (["token", "create", "--ttl", "1d"], 'error: invalid --ttl "1d"'),
    (["token", "create", "ABCDEF.0123456789abcdef"], 'error: the token "ABCDEF.<redacted>" is not of the form'),
    (["token", "create", "--groups", "system:masters"],
     'error: --groups: "system:masters" must start with "system:bootstrappers:"'),
    (["token", "create", "--usages", "signing,flying"], "error: --usages: flying: valid usages are"),
    (["token", "delete", "not-an-id"], 'error: "not-an-id" is neither a token nor a token id'),
])
def test_bad_input_is_refused_before_any_call(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("SKIFF_SERVER", "127.0.0.1:1")   # nothing answers there: no call may be made
    from skiff.cli.main import main
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(message)


def test_the_secret_of_a_token():
    args = argparse.Namespace(token="abcdef.0123456789abcdef", ttl="2h", groups=bt.DEFAULT_GROUP,
                              usages="signing,authentication", description="node 2")
    wanted = token._wanted(args)
    secret = token._secret(wanted)
    assert (secret.metadata.namespace, secret.metadata.name, secret.type) == (
        "kube-system", "bootstrap-token-abcdef", "bootstrap.kubernetes.io/token")
    assert secret.data["usage-bootstrap-signing"] == b"true" and secret.data["description"] == b"node 2"
    left = wanted.expiration - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(hours=1, minutes=59) < left <= datetime.timedelta(hours=2)


def test_kubeadms_columns():
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    t = bt.BootstrapToken("abcdef", "0123456789abcdef", now + datetime.timedelta(hours=23), bt.USAGES,
                          (bt.DEFAULT_GROUP,), "")
    assert token._row(t, now) == ["abcdef.0123456789abcdef", "23h", "2026-12-01T23:00:00Z", "authentication,signing",
                                  "<none>", bt.DEFAULT_GROUP]
    assert token._row(t, now + datetime.timedelta(days=1))[1] == "<invalid>"
    assert token._row(bt.BootstrapToken("abcdef", "0123456789abcdef", None), now)[1:3] == ["<forever>", "<never>"]
