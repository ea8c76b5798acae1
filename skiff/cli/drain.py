"""`skiff drain NODE`: kubectl drain - cordon the node, then evict its pods
through the eviction subresource (so PodDisruptionBudgets hold) and wait for
them to go, with kubectl's flags, wording and exit codes.

    node/n1 cordoned
    Warning: ignoring DaemonSet-managed Pods: default/agent-x7k2p
    evicting pod default/web-5d8f-abcde
    error when evicting pods/"web-5d8f-abcde" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
    evicting pod default/web-5d8f-abcde
    pod/web-5d8f-abcde evicted
    node/n1 drained

Which pods may go is decided first, for all of them (kubectl's filters, in its
order): DaemonSet pods need --ignore-daemonsets (and stay), pods with emptyDir
data need --delete-emptydir-data, pods no controller manages need --force;
otherwise nothing is evicted and the command fails naming the pods. A 429 (the
budget allows no disruption now) is retried every 5 s until --timeout (0: no
limit); a pod counts as gone when it is NotFound or its name holds a new uid.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.cli._common import call_api, parse_duration
from skiff.cli._objects import change
from skiff.client import ApiClient, ApiError, NotFound, TooManyRequests

RETRY_SECONDS = 5.0     # kubectl's wait after a 429
POLL_SECONDS = 1.0      # kubectl's interval when waiting for a pod to go
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "drain", help="cordon a node and evict its pods (respecting PodDisruptionBudgets)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mark the node unschedulable, then evict its pods through the eviction API, so that "
                    "PodDisruptionBudgets are respected, and wait until they are gone.",
        epilog="examples:\n  skiff drain n1 --ignore-daemonsets\n  skiff drain n1 --force --grace-period 0")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--ignore-daemonsets", action="store_true", help="ignore DaemonSet-managed pods")
    p.add_argument("--delete-emptydir-data", action="store_true",
                   help="continue even if there are pods using emptyDir (their data is lost)")
    p.add_argument("--force", action="store_true",
                   help="continue even if there are pods that declare no controller")
    p.add_argument("--grace-period", type=int, default=-1, metavar="S",
                   help="seconds each pod gets to terminate (negative: the pod's own)")
    p.add_argument("--timeout", type=parse_duration, default=0.0, metavar="D",
                   help="give up after this long (e.g. 60s, 5m); 0: wait forever")
    p.add_argument("--pod-selector", "--selector-pods", dest="pod_selector", default="", metavar="SELECTOR",
                   help="only the pods matching this label selector")
    p.add_argument("--disable-eviction", action="store_true",
                   help="delete the pods rather than evict them (bypasses PodDisruptionBudgets)")
    p.add_argument("--dry-run", nargs="?", const="client", default="none", choices=("none", "client"),
                   help="client: only print what would be done")
    p.set_defaults(func=run)


def go_duration(seconds: float) -> str:
    """A duration as Go prints one (kubectl's messages): 10s, 1m30s, 1h0m0s."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


def _controller(pod: Message) -> Message | None:
    return next((r for r in pod.metadata.owner_references if r.controller), None)


def _finished(pod: Message) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


async def plan(client: ApiClient, pods: list[Message], args: argparse.Namespace
               ) -> tuple[list[Message], dict[str, list[str]], dict[str, list[str]]]:
    """(pods to evict, warnings, errors) as kubectl's filters decide; warnings and
    errors map a message to the pods (namespace/name) it is about. As in kubectl,
    the filters run in order until one keeps the pod, and a pod's status is the
    last one given (so a later filter's "okay" drops an earlier warning)."""
    evict: list[Message] = []
    warnings: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    for pod in pods:
        status: tuple[bool, str, str] = (True, "", "")   # (delete, "warning" | "error" | "", message)
        for check in (_daemonset_filter, _mirror_filter, _local_storage_filter, _unreplicated_filter):
            status = await check(client, pod, args)
            if not status[0]:
                break
        delete, level, message = status
        where = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if level == "error":
            errors.setdefault(message, []).append(where)
        elif level == "warning":
            warnings.setdefault(message, []).append(where)
        if delete and level != "error":
            evict.append(pod)
    return evict, warnings, errors


async def _daemonset_filter(client: ApiClient, pod: Message, args: argparse.Namespace) -> tuple[bool, str, str]:
    ref = _controller(pod)
    if ref is None or ref.kind != "DaemonSet":
        return True, "", ""
    try:
        await client.get("DaemonSet", ref.name, pod.metadata.namespace)
    except NotFound as exc:
        # An orphan (its DaemonSet is gone): deleted with --force.
        return (True, "warning", str(exc)) if args.force else (False, "error", str(exc))
    if not args.ignore_daemonsets:
        return False, "error", DAEMONSET_FATAL
    return False, "warning", DAEMONSET_WARNING


async def _mirror_filter(client: ApiClient, pod: Message, args: argparse.Namespace) -> tuple[bool, str, str]:
    return (False, "", "") if MIRROR_ANNOTATION in pod.metadata.annotations else (True, "", "")


async def _local_storage_filter(client: ApiClient, pod: Message, args: argparse.Namespace) -> tuple[bool, str, str]:
    if _finished(pod) or not any(v.HasField("empty_dir") for v in pod.spec.volumes):
        return True, "", ""
    if not args.delete_emptydir_data:
        return False, "error", LOCAL_STORAGE_FATAL
    return True, "warning", LOCAL_STORAGE_WARNING


async def _unreplicated_filter(client: ApiClient, pod: Message, args: argparse.Namespace) -> tuple[bool, str, str]:
    if _finished(pod) or _controller(pod) is not None:
        return True, "", ""
    if not args.force:
        return False, "error", UNMANAGED_FATAL
    return True, "warning", UNMANAGED_WARNING


def aggregate(messages: list[str]) -> str:
    """Go's utilerrors.NewAggregate text: one error as it is, several in brackets."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


class Drainer:
    def __init__(self, client: ApiClient, args: argparse.Namespace) -> None:
        self.client, self.args = client, args
        self.grace = args.grace_period if args.grace_period >= 0 else None
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + args.timeout if args.timeout > 0 else None
        self.verb = ("deleting", "deleted") if args.disable_eviction else ("evicting", "evicted")

    def _timed_out(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    async def _sleep(self, seconds: float) -> None:
        if self.deadline is not None:
            seconds = max(0.0, min(seconds, self.deadline - asyncio.get_running_loop().time()))
        await asyncio.sleep(seconds)

    async def remove(self, pod: Message) -> str | None:
        """Evict (or delete) one pod and wait for it to go; an error's text, or None."""
        name, ns = pod.metadata.name, pod.metadata.namespace
        timeout = f"global timeout reached: {go_duration(self.args.timeout)}"
        while True:
            if self._timed_out():
                return f'error when evicting pods/"{name}" -n "{ns}": {timeout}'
            print(f"{self.verb[0]} pod {ns}/{name}", flush=True)
            try:
                if self.args.disable_eviction:
                    await self.client.delete("Pod", name, ns, self.grace, precondition_uid=pod.metadata.uid)
                else:
                    await self.client.evict(name, ns, grace_period_seconds=self.grace,
                                            precondition_uid=pod.metadata.uid)
                break
            except NotFound:
                return None
            except TooManyRequests as exc:
                print(f'error when evicting pods/"{name}" -n "{ns}" (will retry after {go_duration(RETRY_SECONDS)}): '
                      f"{exc}", file=sys.stderr, flush=True)
                await self._sleep(RETRY_SECONDS)
            except ApiError as exc:
                if self.args.disable_eviction:
                    return f'error when deleting pods/"{name}" -n "{ns}": {exc}'
                return f'error when evicting pods/"{name}" -n "{ns}": {exc}'
        while True:
            try:
                live = await self.client.get("Pod", name, ns)
                if live.metadata.uid != pod.metadata.uid:
                    break
            except NotFound:
                break
            if self._timed_out():
                return f'error when waiting for pod "{name}" in namespace "{ns}" to terminate: {timeout}'
            await self._sleep(POLL_SECONDS)
        print(f"pod/{name} {self.verb[1]}", flush=True)
        return None


def run(args: argparse.Namespace) -> int:
    node_kind = kinds.kind_named("Node")
    name = args.node
    dry = args.dry_run == "client"
    suffix = " (dry run)" if dry else ""

    async def drain(client: ApiClient) -> int:
        def fail(err: str, *, pending: list[Message] = ()) -> int:
            if pending:
                print(f'There are pending pods in node "{name}" when an error occurred: {err}', file=sys.stderr)
                for pod in pending:
                    print(f"pod/{pod.metadata.name}", file=sys.stderr)
            print(f'error: unable to drain node "{name}" due to error: {err}, continuing command...',
                  file=sys.stderr)
            print(f"There are pending nodes to be drained:\n {name}", file=sys.stderr)
            print(f"error: {err}", file=sys.stderr)
            return 1

        try:
            if dry:
                live = await client.get("Node", name, "")
                changed = not live.spec.unschedulable
            else:
                def cordon(node: Message) -> Message:
                    node.spec.unschedulable = True
                    return node
                _, changed = await change(client, node_kind, "", name, cordon)
        except NotFound:
            print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
            return 1
        print(f"node/{name} cordoned{suffix}" if changed else f"node/{name} already cordoned{suffix}", flush=True)

        async def listed() -> list[Message]:
            pods, _ = await client.list("Pod", "", label_selector=args.pod_selector,
                                        field_selector=f"spec.nodeName={name}")
            return pods

        pods, warnings, errors = await plan(client, await listed(), args)
        if errors:
            return fail(aggregate([f"cannot delete {msg}: {', '.join(where)}" for msg, where in errors.items()]))
        if warnings:
            print("Warning: " + "; ".join(f"{msg}: {', '.join(where)}" for msg, where in warnings.items()),
                  file=sys.stderr, flush=True)
        if dry:
            for pod in pods:
                print(f"evicting pod {pod.metadata.namespace}/{pod.metadata.name} (dry run)")
            print(f"node/{name} drained (dry run)")
            return 0
        drainer = Drainer(client, args)
        results = await asyncio.gather(*(drainer.remove(p) for p in pods))
        failures = [r for r in results if r]
        if failures:
            pending, _, _ = await plan(client, await listed(), args)
            return fail(aggregate(failures), pending=pending)
        print(f"node/{name} drained", flush=True)
        return 0

    return call_api(args, drain)
