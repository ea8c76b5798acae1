"""The kernel half of the service proxy: keep Skiff's service table equal to the Services.

`ServiceProxy.sync(ports)` is called with every service port this node should
serve. The first sync (and any sync after a failed one, or after the node's
addresses changed) writes the whole table with `render_full`, which replaces a
table of the same name — so a table a crashed agent left is gone with the
first sync. Later syncs write `render_diff` against what was applied: a port
whose `ServicePort` did not change keeps its rendered unit (compared by
identity first, then by value), so a change to one Service rewrites only its
chains and map elements. Either way it is ONE `nft -f -` transaction: the
kernel applies all of it or none of it.

Rate limiting is the caller's (agent/network/serviceproxy/controller.py):
this class is synchronous and blocking, and the agent runs it in a thread.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping

from agent.network.serviceproxy.model import NodeView, ServicePort
from agent.network.serviceproxy.render import Unit, render_diff, render_full, render_unit
from agent.network.nftables import run_nft


def table_exists(table: str, *, run: Callable = run_nft) -> bool:
    listing = json.loads(run(["-j", "list", "tables", "ip"]) or "{}")
    return any(item.get("table", {}).get("name") == table for item in listing.get("nftables", []))


def delete_table(table: str, *, run: Callable = run_nft) -> None:
    """Remove the service table; absent already is fine."""
    if table_exists(table, run=run):
        run(["delete", "table", "ip", table])


@dataclass(frozen=True)
class SyncResult:
    full: bool
    seconds: float
    changed_ports: int
    stale_udp_endpoints: frozenset[str]   # endpoints UDP service ports no longer send to


class ServiceProxy:
    def __init__(self, *, table: str, node: NodeView, run: Callable[..., str] = run_nft) -> None:
        if not table.startswith("skiff") or not table.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"service table {table!r} must start with 'skiff' and be alphanumeric, '_' or '-'")
        self.table = table
        self.node = node
        self._run = run
        self._applied: dict[str, tuple[ServicePort, Unit]] | None = None   # None: next sync is full
        self._refs: Counter = Counter()       # endpoint IP -> units using it (the hairpin set)
        self._udp_refs: Counter = Counter()   # the same for UDP service ports (conntrack clean-up)

    def set_node(self, node: NodeView) -> None:
        if node != self.node:
            self.node = node
            self._applied = None

    def sync(self, ports: Mapping[str, ServicePort]) -> SyncResult:
        """Make the table serve exactly `ports` (key -> ServicePort), in one transaction."""
        started = time.monotonic()
        previous = self._applied or {}
        units: dict[str, tuple[ServicePort, Unit]] = {}
        for key, port in ports.items():
            known = previous.get(key)
            same = known is not None and (known[0] is port or known[0] == port)
            units[key] = known if same else (port, render_unit(port, self.node))
        new = {k: u for k, (_p, u) in units.items()}
        full = self._applied is None
        touched = [k for k in set(units) | set(previous) if units.get(k) is not previous.get(k)]
        # How many units use each endpoint IP (and each UDP one): changed by the touched units alone.
        delta, udp_delta = Counter(), Counter()
        for key in touched if not full else ():
            if key in previous:
                delta.subtract(previous[key][1].endpoint_ips)
                udp_delta.subtract(previous[key][1].udp_endpoints)
        if full:
            self._refs.clear()
            self._udp_refs.clear()
        for key in touched if not full else units:
            if key in units:
                delta.update(units[key][1].endpoint_ips)
                udp_delta.update(units[key][1].udp_endpoints)
        if full:
            script = render_full(table=self.table, node=self.node, units=new)
        else:
            hairpin = ([ip for ip, d in delta.items() if d < 0 and self._refs[ip] + d <= 0],
                       [ip for ip, d in delta.items() if d > 0 and self._refs[ip] <= 0])
            script = render_diff(table=self.table, old={k: u for k, (_p, u) in previous.items()}, new=new,
                                 hairpin=hairpin)
        self._applied = None   # a failure below leaves the table unknown: the next sync writes it whole
        if script:
            self._run(["-f", "-"], script)
        self._applied = units
        stale = frozenset(ip for ip, d in udp_delta.items() if d < 0 and self._udp_refs[ip] + d <= 0)
        for refs, changes in ((self._refs, delta), (self._udp_refs, udp_delta)):
            for ip, d in changes.items():
                if refs[ip] + d > 0:
                    refs[ip] += d
                else:
                    refs.pop(ip, None)
        return SyncResult(full=full, seconds=time.monotonic() - started, changed_ports=len(touched),
                          stale_udp_endpoints=stale)

    def teardown(self) -> None:
        """Remove the table (idempotent); the next sync writes it whole again."""
        delete_table(self.table, run=self._run)
        self._applied = None
