"""The fuzz suite's API half (issue 15): raw gRPC requests to a live control
plane — garbage bytes to every method, empty envelopes and messages, absurd
values — each answered within a bound by a clean code (never INTERNAL or
UNKNOWN, never "internal error") with a message; afterwards the control
plane still creates and lists objects and a watch still delivers. The seed is
fixed and printed with any failure."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc
import pytest

from proto.skiff.v1 import api_pb2, types_pb2
from skiff.client import ApiClient
from tests.fuzz.generators import SEED

pytestmark = pytest.mark.etcd

BOUND_S = 10.0
UNARY = {"Apply": api_pb2.ApplyResponse, "Create": api_pb2.Object, "Update": api_pb2.Object,
         "UpdateStatus": api_pb2.Object, "Get": api_pb2.Object, "List": api_pb2.ObjectList,
         "Delete": api_pb2.Object, "Bind": api_pb2.Object, "Stats": api_pb2.NodeStats}
STREAMS = ("Watch", "Logs")
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def _pod(name: str = "fz", **spec: Any) -> api_pb2.Object:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.spec.containers.add(name="c", image="busybox")
    p.spec.scheduler_name = "fuzz-no-scheduler"
    for key, value in spec.items():
        setattr(p.spec, key, value)
    return api_pb2.Object(pod=p)


def absurd_requests() -> list[tuple[str, Any]]:
    """(method, request message) that a careless or hostile client sends."""
    huge = "x" * 100_000
    key = api_pb2.ObjectKey
    out: list[tuple[str, Any]] = []
    for method, request in (("Apply", api_pb2.ApplyRequest), ("Create", api_pb2.CreateRequest),
                            ("Update", api_pb2.UpdateRequest), ("UpdateStatus", api_pb2.UpdateRequest)):
        out += [(method, request()), (method, request(object=api_pb2.Object())),
                (method, request(object=api_pb2.Object(pod=types_pb2.Pod()))),
                (method, request(object=_pod(huge))), (method, request(object=_pod("../../etc"))),
                (method, request(object=_pod(termination_grace_period_seconds=2**63 - 1))),
                (method, request(object=_pod(node_name="n" * 1_000_000)))]
    event = types_pb2.Event(api_version="v1", kind="Event")
    event.metadata.name = "fz-event"
    event.last_timestamp.seconds = 2**62
    out.append(("Create", api_pb2.CreateRequest(object=api_pb2.Object(event=event))))
    out += [("Get", api_pb2.GetRequest()), ("Get", api_pb2.GetRequest(key=key(kind="Pod", name=huge))),
            ("Get", api_pb2.GetRequest(key=key(kind="Bogus", name="x"))),
            ("Get", api_pb2.GetRequest(key=key(kind="Pod", namespace="../..", name="../../x"))),
            ("List", api_pb2.ListRequest()), ("List", api_pb2.ListRequest(kind="Pod", label_selector="!!==,(")),
            ("List", api_pb2.ListRequest(kind="Pod", field_selector="spec.bogus=1")),
            ("List", api_pb2.ListRequest(kind=huge)),
            ("Delete", api_pb2.DeleteRequest()),
            ("Delete", api_pb2.DeleteRequest(key=key(kind="Pod", name="missing"), grace_period_seconds=2**63 - 1)),
            ("Delete", api_pb2.DeleteRequest(key=key(kind="Pod", name="missing"), grace_period_seconds=-2**63)),
            ("Delete", api_pb2.DeleteRequest(key=key(kind="Pod", name="missing"), propagation_policy="Bogus")),
            ("Bind", api_pb2.BindRequest()), ("Bind", api_pb2.BindRequest(name="missing", node_name=huge)),
            ("Stats", api_pb2.StatsRequest()), ("Stats", api_pb2.StatsRequest(node_name=huge)),
            ("Watch", api_pb2.WatchRequest()), ("Watch", api_pb2.WatchRequest(kind="Bogus")),
            ("Watch", api_pb2.WatchRequest(kind="Pod", resource_version="-9999999999999999999")),
            ("Watch", api_pb2.WatchRequest(kind="Pod", resource_version="99999999999999999999999")),
            ("Watch", api_pb2.WatchRequest(kind="Pod", resource_version="abc")),
            ("Watch", api_pb2.WatchRequest(kind="Pod", label_selector="((")),
            ("Logs", api_pb2.LogsRequest()), ("Logs", api_pb2.LogsRequest(name=huge, tail_lines=-2**63))]
    return out


async def _call(channel: grpc.aio.Channel, method: str, payload: bytes,
                service: str = "skiff.v1.Api") -> tuple[str, str]:
    """(outcome, detail): outcome is a code name, "OK", or "LIVE" for a stream
    that is open and quiet (a valid watch)."""
    path = f"/{service}/{method}"
    try:
        if method in STREAMS:
            call = channel.unary_stream(path)(payload, timeout=BOUND_S + 5)
            try:
                await asyncio.wait_for(call.read(), 3)
            except asyncio.TimeoutError:
                call.cancel()
                return "LIVE", ""
            call.cancel()
            return "OK", ""
        if method == "Exec":
            call = channel.stream_stream(path)(timeout=BOUND_S)
            if payload:
                await call.write(payload)
            await call.done_writing()
            async for _ in call:
                pass
            return "OK", ""
        await channel.unary_unary(path)(payload, timeout=BOUND_S)
        return "OK", ""
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details() or ""


def _judge(method: str, payload: bytes, outcome: str, detail: str, elapsed: float) -> str | None:
    where = f"{method} with {payload[:80]!r}{'...' if len(payload) > 80 else ''} ({len(payload)} bytes)"
    if outcome in {c.name for c in BAD_CODES}:
        return f"{where}: {outcome}: {detail[:300]}"
    if outcome == "DEADLINE_EXCEEDED" or elapsed > BOUND_S:
        return f"{where}: no answer within {BOUND_S}s"
    if outcome not in ("OK", "LIVE") and not detail.strip():
        return f"{where}: {outcome} without a message"
    if "internal error" in detail.lower() or "Traceback" in detail:
        return f"{where}: {detail[:300]}"
    if len(detail) > 4000:
        return f"{where}: a {len(detail)}-character message"
    return None


def test_raw_requests_get_clean_codes_and_the_control_plane_still_works(controlplane):
    rng = random.Random(SEED)
    requests: list[tuple[str, bytes]] = []
    for method in (*UNARY, *STREAMS, "Exec"):
        requests += [(method, b"")] + [(method, rng.randbytes(n)) for n in (1, 3, 17, 200, 5000)]
        requests.append((method, b"\x0a\xff\xff\xff\xff\x0f"))   # a field claiming 4 GB
    absurd = [(m, r.SerializeToString()) for m, r in absurd_requests()]
    must_refuse = {payload for m, payload in absurd if m in ("Apply", "Create", "Update", "UpdateStatus")}
    requests += absurd
    requests += [("Exec", api_pb2.ExecInput(stdin=b"x").SerializeToString()),
                 ("Exec", api_pb2.ExecInput(start=api_pb2.ExecStart(name="missing", command=["sh"]))
                  .SerializeToString())]

    async def main() -> list[str]:
        problems = []
        async with grpc.aio.insecure_channel(controlplane, options=[
                ("grpc.max_send_message_length", 64 << 20)]) as channel:
            for method, payload in requests:
                loop = asyncio.get_running_loop()
                started = loop.time()
                try:
                    outcome, detail = await asyncio.wait_for(_call(channel, method, payload), BOUND_S + 10)
                except asyncio.TimeoutError:
                    outcome, detail = "DEADLINE_EXCEEDED", ""
                problem = _judge(method, payload, outcome, detail, loop.time() - started)
                if outcome == "OK" and payload in must_refuse:
                    problem = f"{method} with {payload[:120]!r}: accepted, must be refused"
                if problem:
                    problems.append(problem)
        return problems

    problems = asyncio.run(main())
    assert not problems, f"seed {SEED}: {len(problems)} problems:\n" + "\n".join(problems[:20])
    assert_still_serving(controlplane)


def assert_still_serving(address: str) -> None:
    """The control plane still creates and lists objects, and a watch delivers."""
    async def main() -> None:
        async with ApiClient(address) as client:
            _, revision = await client.list("ConfigMap")
            events = client.watch("ConfigMap", resource_version=revision)
            cm = types_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
            cm.metadata.name = "after-the-fuzz"
            cm.metadata.namespace = "default"
            cm.data["ok"] = "yes"
            await client.create(cm)
            _, obj, _ = await asyncio.wait_for(anext(events), 10)
            assert obj.metadata.name == "after-the-fuzz"
            await events.aclose()
            items, _ = await client.list("ConfigMap", "default")
            assert "after-the-fuzz" in {o.metadata.name for o in items}
    asyncio.run(asyncio.wait_for(main(), 30))
