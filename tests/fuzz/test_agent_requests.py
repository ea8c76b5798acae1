"""The fuzz suite's raw-request part on the agent's own port (issue 15): the
Agent service (Logs, Exec, Stats) decodes requests itself, so garbage bytes are
INVALID_ARGUMENT naming the message — never UNKNOWN or INTERNAL — each within a
bound; afterwards the agent still serves a running pod's logs. The seed is
fixed and printed with any failure."""
from __future__ import annotations

import asyncio
import random

import grpc

from proto.skiff.v1 import api_pb2, api_pb2_grpc
from tests.agent.test_server import log_of, running_pod, serve
from tests.agent.test_podworkers import World
from tests.fuzz.generators import SEED
from tests.fuzz.test_api_requests import BOUND_S, _call, _judge

MESSAGES = {"Logs": "skiff.v1.LogsRequest", "Exec": "skiff.v1.ExecInput", "Stats": "skiff.v1.StatsRequest"}


def test_raw_requests_to_the_agent_get_clean_codes_and_it_still_serves(tmp_path):
    rng = random.Random(SEED)
    garbage: list[tuple[str, bytes]] = []
    for method in MESSAGES:
        garbage += [(method, rng.randbytes(n)) for n in (1, 3, 17, 200, 5000)]
        garbage.append((method, b"\x0a\xff\xff\xff\xff\x0f"))   # a field claiming 4 GB
    absurd = [("Logs", api_pb2.LogsRequest().SerializeToString()),
              ("Logs", api_pb2.LogsRequest(name="x" * 100_000, tail_lines=-2**63).SerializeToString()),
              ("Logs", api_pb2.LogsRequest(namespace="../..", name="../../etc").SerializeToString()),
              ("Stats", b""), ("Exec", b""),
              ("Exec", api_pb2.ExecInput(stdin=b"x").SerializeToString()),
              ("Exec", api_pb2.ExecInput(start=api_pb2.ExecStart(name="missing", command=["sh"]))
               .SerializeToString())]

    async def scenario() -> tuple[list[str], bytes]:
        w = World(tmp_path)
        server, channel, stub = await serve(w)
        problems = []
        try:
            uid = await running_pod(w, "web")
            log_of(w, uid).write_bytes(b"still here\n")
            for method, payload in garbage + absurd:
                loop = asyncio.get_running_loop()
                started = loop.time()
                try:
                    outcome, detail = await asyncio.wait_for(
                        _call(channel, method, payload, service="skiff.v1.Agent"), BOUND_S + 10)
                except asyncio.TimeoutError:
                    outcome, detail = "DEADLINE_EXCEEDED", ""
                problem = _judge(method, payload, outcome, detail, loop.time() - started)
                if problem is None and (method, payload) in garbage and not (
                        outcome == "INVALID_ARGUMENT" and MESSAGES[method] in detail):
                    problem = f"{method} with {payload[:80]!r}: {outcome} {detail[:200]!r}, " \
                              f"wanted INVALID_ARGUMENT naming {MESSAGES[method]}"
                if problem:
                    problems.append(problem)
            logs = b"".join([c.data async for c in stub.Logs(
                api_pb2.LogsRequest(namespace="default", name="web"), timeout=BOUND_S)])
            return problems, logs
        finally:
            await channel.close()
            await server.stop(None)

    problems, logs = asyncio.run(scenario())
    assert not problems, f"seed {SEED}: {len(problems)} problems:\n" + "\n".join(problems[:20])
    assert logs == b"still here\n"
