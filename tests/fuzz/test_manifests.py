"""The fuzz suite's manifest half (issue 15): malformed manifests from
generators.py, many documents to a file, through the real `skiff apply`
against a live control plane. Each document must be refused with its file,
document and field (or, where the value is merely odd, stored); nothing is
stored that should not be; every call answers within a bound; no traceback,
no internal error. The seed is fixed and printed with any failure."""
from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skiff.client import ApiClient
from tests.fuzz.generators import REJECT, SEED, Case, manifest_cases, one_line
from tests.fuzz.test_api_requests import assert_still_serving

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
CALL_BOUND_S = 90.0       # one `skiff apply` of a whole batch
BATCH = 400               # documents per file


def skiff(tmp_path: Path, server: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SKIFF_CONFIG=str(tmp_path / "skiff-config"),
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    env.pop("SKIFF_SERVER", None)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "skiff.cli.main", "--server", server, *args], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=CALL_BOUND_S)
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def stored_names(server: str) -> set[str]:
    async def main() -> set[str]:
        async with ApiClient(server) as client:
            names: set[str] = set()
            for kind in ("Pod", "ConfigMap", "Secret", "Namespace"):
                items, _ = await client.list(kind)
                names |= {o.metadata.name for o in items}
            return names
    return asyncio.run(main())


def check_batch(tmp_path: Path, server: str, cases: list[Case], label: str) -> list[str]:
    """Apply `cases` as one file; the problems found (empty: all good)."""
    path = tmp_path / f"{label}.yaml"
    path.write_text("---\n".join(c.text for c in cases))
    before = stored_names(server)
    result = skiff(tmp_path, server, "apply", "-f", str(path))
    out = result.stdout + result.stderr
    problems = []
    if "Traceback" in out or "internal error" in out.lower():
        problems.append(f"a traceback or internal error:\n{out[-3000:]}")
    if any(c.expect == REJECT for c in cases) and result.returncode == 0:
        problems.append("exit code 0 with documents that must be refused")
    created = set(re.findall(r"^\w+/(\S+) created", result.stdout, re.M))
    refused: dict[int, list[str]] = {}
    total = len(cases)
    for line in result.stderr.splitlines():
        m = re.match(rf"error: {re.escape(str(path))}(?::\d+)?: document (\d+) of {total}: (.*)", line)
        if m:
            refused.setdefault(int(m.group(1)), []).append(m.group(2))
        elif line.strip():
            problems.append(f"a line that names no file and document: {line[:300]}")
    for i, case in enumerate(cases, start=1):
        errors = refused.get(i, [])
        if case.expect == REJECT and not errors:
            problems.append(f"document {i} not refused: {one_line(case)}\nstdout: {result.stdout[-500:]}")
        if errors and case.field_error and not any(re.match(r"[\w\[\]. -]+: ", e) and not e.startswith(
                ("invalid YAML", "expected an object")) for e in errors):
            problems.append(f"document {i} refused without a field: {errors}\n{one_line(case)}")
        if not errors and case.name not in created and case.path != "metadata.name":
            problems.append(f"document {i} neither refused nor created: {one_line(case)}")
    after = stored_names(server)
    should_not = {c.name for c in cases if c.expect == REJECT} & (after - before)
    if should_not:
        problems.append(f"stored although refused: {sorted(should_not)[:10]}")
    unexplained = (after - before) - created
    if unexplained:
        problems.append(f"stored without a 'created' line: {sorted(unexplained)[:10]}")
    print(f"{label}: {len(cases)} documents, {len(refused)} refused, {len(created)} created, "
          f"{result.elapsed:.1f}s")   # type: ignore[attr-defined]
    return problems


def test_malformed_manifests_through_the_cli(controlplane, tmp_path):
    rng = random.Random(SEED)
    cases = manifest_cases(rng)
    huge = [c for c in cases if c.mutation == "huge-string"]
    rest = [c for c in cases if c.mutation != "huge-string"]
    problems: list[str] = []
    for n in range(0, len(rest), BATCH):
        problems += check_batch(tmp_path, controlplane, rest[n:n + BATCH], f"batch{n // BATCH}")
    problems += check_batch(tmp_path, controlplane, huge, "huge")
    if problems and os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text("\n\n".join(problems))
    assert not problems, f"seed {SEED}: {len(problems)} problems; the first ones:\n" + "\n\n".join(problems[:8])
    assert_still_serving(controlplane)
