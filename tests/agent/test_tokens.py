"""Projected ServiceAccount tokens on the node (agent/tokens.py, agent/configvolumes.py):
a token bound to the pod is asked for once, written into the volume, and asked for again
at 80 % of its lifetime (kubelet's rule), with a wake-up scheduled for then; a failure is
the volume's FailedMount reason."""
from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from agent import configvolumes
from agent.envvars import EnvContext
from agent.tokens import TokenManager
from controlplane.serviceaccounts.admission import api_access_volume
from proto.skiff.v1 import serviceaccounts_pb2, types_pb2


class Client:
    def __init__(self, clock) -> None:
        self.calls: list[tuple] = []
        self.clock = clock
        self.fail = ""

    async def create_token(self, name, namespace="default", *, audiences=(), expiration_seconds=None,
                           bound_kind="", bound_name="", bound_uid="", timeout=30):
        if self.fail:
            raise RuntimeError(self.fail)
        self.calls.append((name, namespace, audiences, expiration_seconds, bound_kind, bound_name, bound_uid))
        out = serviceaccounts_pb2.TokenRequest()
        out.status.token = f"token-{len(self.calls)}"
        out.status.expiration_timestamp.FromSeconds(int(self.clock() + expiration_seconds))
        return out


def _pod() -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "shop", "uid-1"
    pod.spec.service_account_name = "robot"
    pod.spec.volumes.append(api_access_volume("kube-api-access-abcde"))
    return pod


def test_the_token_is_bound_to_the_pod_written_and_refreshed_at_80_percent(tmp_path):
    now = [1000.0]
    woken: list[str] = []

    async def go():
        client = Client(lambda: now[0])
        tokens = TokenManager(client=client, on_due=woken.append, clock=lambda: now[0])
        pod = _pod()
        await tokens.prefetch(pod)
        assert client.calls == [("robot", "shop", (), 3607, "Pod", "web", "uid-1")]
        timer = tokens._timers["uid-1"]
        assert timer.when() - asyncio.get_running_loop().time() == pytest.approx(3607 * 0.8, abs=1)
        roots = types_pb2.ConfigMap(data={"ca.crt": "CA"})
        ctx = EnvContext(lookup=lambda kind, ns, name: roots if name == "kube-root-ca.crt" else None,
                         allocatable=(Fraction(1), 1 << 30), token=tokens.token, token_error=tokens.error)
        assert configvolumes.sync(pod, tmp_path, ctx) == ["kube-api-access-abcde"]
        volume = tmp_path / "kube-api-access-abcde"
        assert (volume / "token").read_text() == "token-1"
        assert (volume / "ca.crt").read_text() == "CA" and (volume / "namespace").read_text() == "shop"
        now[0] += 3607 * 0.5
        await tokens.prefetch(pod)
        assert len(client.calls) == 1            # not due yet
        now[0] += 3607 * 0.31
        await tokens.prefetch(pod)
        assert len(client.calls) == 2            # past 80 %: a new one, written at the next sync
        assert configvolumes.sync(pod, tmp_path, ctx) == ["kube-api-access-abcde"]
        assert (volume / "token").read_text() == "token-2"
        tokens.forget("uid-1")
        assert not tokens._timers and tokens.token(pod, pod.spec.volumes[0].projected.sources[0].service_account_token) is None
    asyncio.run(go())


def test_a_token_that_cannot_be_had_is_the_volumes_failed_mount(tmp_path):
    async def go():
        client = Client(lambda: 0.0)
        client.fail = 'serviceaccounts "robot" not found'
        tokens = TokenManager(client=client, on_due=lambda uid: None, clock=lambda: 0.0)
        pod = _pod()
        await tokens.prefetch(pod)
        ctx = EnvContext(lookup=lambda kind, ns, name: types_pb2.ConfigMap(data={"ca.crt": "CA"}),
                         allocatable=(Fraction(1), 1 << 30), token=tokens.token, token_error=tokens.error)
        with pytest.raises(configvolumes.VolumeError, match='MountVolume.SetUp failed for volume '
                                                            '"kube-api-access-abcde" : failed to fetch token: '
                                                            'serviceaccounts "robot" not found'):
            configvolumes.sync(pod, tmp_path, ctx)
    asyncio.run(go())
