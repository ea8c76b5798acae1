"""`skiff rollout status|history|undo|restart|pause|resume deployment/NAME`, as kubectl
(status and restart for daemonsets too).

    skiff rollout status deploy/web            waits; exit 1 once the progress deadline is exceeded
    skiff rollout history deploy/web [--revision N]
    skiff rollout undo deploy/web [--to-revision N]
    skiff rollout restart|pause|resume deploy/web

The revisions are the Deployment's ReplicaSets (skiff.api.rollout); undo and
restart change the Deployment's template and leave the rolling to its
controller, as kubectl does.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import datetime, timezone

from google.protobuf.message import Message

from skiff.api import describing, kinds, rollout, workload
from skiff.cli._common import CliError, add_namespace_flags, call_api, kind_arg, namespace_of, parse_duration
from skiff.cli._objects import change, intermixed, not_found, object_label
from skiff.client import ApiClient, NotFound

SUPPORTED = ("Deployment", "DaemonSet")
ONLY_DEPLOYMENTS = ("history", "undo", "pause", "resume")  # DaemonSet revisions are not kept (no ControllerRevision)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rollout", help="manage the rollout of a deployment",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Manage the rollout of a deployment: watch it, list and return to its revisions, "
                    "restart, pause and resume it.",
        epilog="examples:\n"
               "  skiff rollout status deployment/web\n"
               "  skiff rollout history deployment/web\n"
               "  skiff rollout undo deployment/web --to-revision=1\n"
               "  skiff rollout restart deployment/web")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    helps = {"status": "show the status of the rollout (waits until it is done)",
             "history": "view the rollout history", "undo": "undo a previous rollout",
             "restart": "restart the pods (a new rollout of the same template)",
             "pause": "mark the deployment as paused", "resume": "resume a paused deployment"}
    for verb, text in helps.items():
        v = intermixed(verbs.add_parser(verb, help=text, description=text[:1].upper() + text[1:] + "."))
        v.add_argument("resource", metavar="TYPE/NAME|TYPE NAME", nargs="+", help="e.g. deployment/web")
        add_namespace_flags(v)
        if verb == "status":
            v.add_argument("-w", "--watch", default=True, action=argparse.BooleanOptionalAction,
                           help="watch until the rollout is done (default); --no-watch prints the state once")
            v.add_argument("--timeout", type=parse_duration, default=0.0, metavar="DURATION",
                           help="give up after this long (default: never)")
        if verb == "history":
            v.add_argument("--revision", type=int, default=0, metavar="N", help="show this revision's template")
        if verb == "undo":
            v.add_argument("--to-revision", type=int, default=0, metavar="N",
                           help="the revision to go back to (default: the previous one)")
        v.set_defaults(func=run)


def target(words: list[str]) -> tuple[kinds.Kind, str]:
    if len(words) == 1 and "/" in words[0]:
        type_, _, name = words[0].partition("/")
    elif len(words) == 2:
        type_, name = words
    else:
        raise CliError("expected one resource as TYPE/NAME or TYPE NAME, e.g. deployment/web")
    kind = kind_arg(type_)
    if kind.name not in SUPPORTED or not name:
        raise CliError(f"rollout is not supported for {kind.resource}; it manages deployments and daemonsets")
    return kind, name


def run(args: argparse.Namespace) -> int:
    kind, name = target(args.resource)
    if kind.name != "Deployment" and args.verb in ONLY_DEPLOYMENTS:
        raise CliError(f"rollout {args.verb} is not supported for {kind.resource}; it works on deployments")
    namespace = namespace_of(args)
    verb = {"status": status, "history": history, "undo": undo, "restart": restart,
            "pause": pause, "resume": resume}[args.verb]

    async def body(client: ApiClient) -> int:
        try:
            return await verb(client, args, kind, namespace, name)
        except NotFound:
            print(not_found(kind, name), file=sys.stderr)
            return 1
    return call_api(args, body)


# ---------------------------------------------------------------- status

async def status(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    last = ""

    def show(d: Message) -> bool:
        nonlocal last
        try:
            text, done = rollout.STATUS_VIEWERS[kind.name](d)
        except rollout.RolloutError as exc:
            raise CliError(str(exc)) from None
        if text != last:
            print(text, flush=True)
            last = text
        return done

    async def follow() -> int:
        d = await client.get(kind.name, name, namespace)
        if show(d) or not args.watch:
            return 0
        while True:  # a broken watch is taken up again from a fresh read
            # Closed before the client's channel is (an open watch would be cut by it).
            async with contextlib.aclosing(client.watch(kind.name, namespace,
                                                        field_selector=f"metadata.name={name}",
                                                        resource_version=d.metadata.resource_version)) as events:
                async for event_type, obj, _ in events:
                    if event_type == "DELETED":
                        raise CliError(f'{kind.name.lower()} "{name}" was deleted')
                    if show(obj):
                        return 0
            d = await client.get(kind.name, name, namespace)
            if show(d):
                return 0

    if not args.timeout:
        return await follow()
    try:
        async with asyncio.timeout(args.timeout):
            return await follow()
    except TimeoutError:
        raise CliError("timed out waiting for the condition") from None


# ---------------------------------------------------------------- history and undo

async def _revisions(client: ApiClient, d: Message) -> list[tuple[int, Message]]:
    sets, _ = await client.list("ReplicaSet", d.metadata.namespace)
    return rollout.history(rollout.owned_by(d, sets))


async def history(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    d = await client.get(kind.name, name, namespace)
    revisions = await _revisions(client, d)
    if args.revision:
        for revision, rs in revisions:
            if revision == args.revision:
                print(f"{object_label(d)} with revision #{revision}")
                text = describing.Text()
                workload.describe_template(text, rs.spec.template)
                print(str(text), end="")
                return 0
        raise CliError("unable to find the specified revision")
    print(object_label(d))
    rows = [["REVISION", "CHANGE-CAUSE"]]
    rows += [[str(r), rs.metadata.annotations.get(rollout.CHANGE_CAUSE, "<none>")] for r, rs in revisions]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1]}".rstrip())
    print()
    return 0


async def undo(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    d = await client.get(kind.name, name, namespace)
    if d.spec.paused:
        raise CliError(f"you cannot rollback a paused deployment; resume it first with "
                       f"'skiff rollout resume deployment/{name}' and try again")
    sets, _ = await client.list("ReplicaSet", namespace)
    try:
        revision, rs = rollout.rollback_target(d, rollout.owned_by(d, sets), args.to_revision)
    except rollout.RollbackError as exc:
        raise CliError(str(exc)) from None
    template = rollout.rolled_back_template(rs)
    if rollout.equal_ignore_hash(template, d.spec.template):
        print(f"{object_label(d)} skipped rollback (current template already matches revision {revision})")
        return 0

    def roll_back(live: Message) -> Message:
        live.spec.template.CopyFrom(template)
        cause = rs.metadata.annotations.get(rollout.CHANGE_CAUSE)
        if cause is not None:
            live.metadata.annotations[rollout.CHANGE_CAUSE] = cause
        return live
    await change(client, kind, namespace, name, roll_back)
    print(f"{object_label(d)} rolled back")
    return 0


# ---------------------------------------------------------------- restart, pause, resume

async def restart(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    def restarted(live: Message) -> Message:
        if getattr(live.spec, "paused", False):
            raise CliError(f'deployments "{name}" can\'t restart paused deployment (run rollout resume first)')
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        live.spec.template.metadata.annotations[rollout.RESTARTED_AT] = now
        return live
    d, _ = await change(client, kind, namespace, name, restarted)
    print(f"{object_label(d)} restarted")
    return 0


async def pause(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    return await _set_paused(client, kind, namespace, name, True)


async def resume(client: ApiClient, args: argparse.Namespace, kind: kinds.Kind, namespace: str, name: str) -> int:
    return await _set_paused(client, kind, namespace, name, False)


async def _set_paused(client: ApiClient, kind: kinds.Kind, namespace: str, name: str, paused: bool) -> int:
    def flip(live: Message) -> Message:
        if live.spec.paused == paused:
            raise CliError(f'{kind.resource}.apps "{name}" {"is already paused" if paused else "is not paused"}')
        live.spec.paused = paused
        return live
    d, _ = await change(client, kind, namespace, name, flip)
    print(f"{object_label(d)} {'paused' if paused else 'resumed'}")
    return 0
