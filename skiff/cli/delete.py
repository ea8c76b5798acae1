"""`skiff delete pod|node NAME` and `skiff delete -f FILE`: delete objects and,
like kubectl, wait until they are gone.

`--cascade` is kubectl's: what happens to the object's dependents (objects
whose metadata.ownerReferences name it), done by the control plane's garbage
collector. background (default): the object goes now, its dependents after;
foreground: it stays (deletionTimestamp) until its blocking dependents are
gone; orphan: the dependents stay, without the reference to it. The wait
covers that: it returns once the object itself is gone.

A pod bound to a node is first only marked for deletion; its agent stops the
containers (SIGTERM, then SIGKILL after the grace period) and then removes it.
Waiting watches from the revision of a list that still held the object, so
the DELETED event cannot slip between checking and watching.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from skiff.api import kinds
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of, parse_duration, scope
from skiff.cli._objects import intermixed, not_found, parse_resources
from skiff.cli.apply import load_documents
from skiff.client import ApiClient, NotFound


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "delete", help="delete objects by name or by manifest",
        description="Delete `RESOURCE NAME...` or the objects in manifests (-f). By default waits "
                    "until each object is gone, as kubectl does.")
    p.add_argument("resource", metavar="TYPE[,TYPE...] | TYPE/NAME", nargs="?",
                   help="pod, node, ... (see skiff api-resources), or TYPE/NAME")
    p.add_argument("names", metavar="NAME", nargs="*")
    p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-",
                   help="delete the objects in these manifests (repeatable)")
    add_namespace_flags(p, all_namespaces=True)
    p.add_argument("--grace-period", type=int, metavar="N",
                   help="seconds the containers get between SIGTERM and SIGKILL (default: the pod's own)")
    p.add_argument("--now", action="store_true", help="stop at once: same as --grace-period 1")
    p.add_argument("--force", action="store_true",
                   help="with --grace-period 0: remove the object without waiting for the node to stop "
                        "the containers (they may keep running)")
    p.add_argument("--all", dest="all_objects", action="store_true",
                   help="delete every object of RESOURCE in the namespace")
    p.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="delete the objects with these labels")
    p.add_argument("--ignore-not-found", action="store_true", help="a missing object is not an error")
    p.add_argument("--wait", dest="wait", nargs="?", const=True, default=True, type=_boolean,
                   metavar="true|false", help="wait until the objects are gone (default: true, as kubectl)")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="return once deletion is requested")
    p.add_argument("--cascade", nargs="?", const="background", default="background",
                   metavar="background|foreground|orphan",
                   help="what happens to the object's dependents: deleted after it (background, the default), "
                        "before it (foreground), or kept without the reference to it (orphan)")
    p.add_argument("--timeout", type=parse_duration, metavar="DURATION",
                   help="give up waiting after this long (e.g. 60s, 5m; default: wait forever)")
    p.set_defaults(func=run)
    intermixed(p)


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}: true or false")
    return value.lower() == "true"


def _targets(args: argparse.Namespace) -> tuple[list[tuple[kinds.Kind, str, str]], bool]:
    if args.filename:
        if args.resource:
            raise CliError("give either -f FILE or RESOURCE NAME, not both")
        documents, failed = load_documents(args.filename, namespace=args.namespace)
        return [(kinds.kind_of(d.obj), d.obj.metadata.namespace or namespace_of(args), d.obj.metadata.name)
                for d in documents], failed
    by_query = args.all_objects or args.selector
    if not args.resource or not (args.names or by_query or "/" in args.resource):
        raise CliError("name what to delete: `skiff delete pod NAME...`, `skiff delete pods --all`, "
                       "`skiff delete pods -l app=web` or `skiff delete -f FILE`")
    if args.all_namespaces and not by_query:
        raise CliError("-A/--all-namespaces goes with --all or -l, not with names")
    requests = parse_resources([args.resource, *args.names])
    if by_query and any(r.names for r in requests):
        raise CliError("names cannot be given with --all or -l")
    return [(r.kind, namespace_of(args), name) for r in requests for name in r.names], False


async def _matching(client: ApiClient, args: argparse.Namespace) -> list[tuple[kinds.Kind, str, str]]:
    """The objects `--all` or `-l` select."""
    out = []
    for request in parse_resources([args.resource]):
        kind = request.kind
        namespace = "" if args.all_namespaces else scope(kind, namespace_of(args))  # -A: with --all or -l
        objs, _ = await client.list(kind.name, namespace, args.selector)
        out += [(kind, o.metadata.namespace or namespace_of(args), o.metadata.name) for o in objs]
    return out


# kubectl's --cascade values, and its legacy booleans (with its warnings).
PROPAGATION = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}
_LEGACY_CASCADE = {"true": "background", "false": "orphan"}


def propagation_policy(cascade: str) -> str:
    """The API's propagation policy for a --cascade value (kubectl's rules)."""
    value = cascade.lower()
    if value in _LEGACY_CASCADE:
        print(f"warning: --cascade={value} is deprecated (boolean value) and can be replaced with "
              f"--cascade={_LEGACY_CASCADE[value]}.", file=sys.stderr)
        value = _LEGACY_CASCADE[value]
    if value not in PROPAGATION:
        raise CliError(f'invalid cascade value ({cascade}). Must be "background", "foreground", or "orphan".')
    return PROPAGATION[value]


def deleted_line(kind: kinds.Kind, name: str) -> str:
    """kubectl's line: `pod "web" deleted`, `deployment.apps "web" deleted` (kind.group)."""
    group = kind.api_version.rpartition("/")[0]
    return f'{kind.name.lower()}{"." + group if group else ""} "{name}" deleted'


def run(args: argparse.Namespace) -> int:
    targets, failed = _targets(args)
    policy = propagation_policy(args.cascade)
    by_query = not args.filename and (args.all_objects or args.selector)
    grace = 1 if args.now else args.grace_period
    if grace is not None and grace < 0:
        raise CliError("--grace-period must not be negative")
    if grace == 0 and not args.force:
        # As kubectl: 0 would remove the object before its agent stopped the
        # containers, so without --force it means "as fast as possible", 1 s.
        grace = 1

    async def delete_all(client: ApiClient) -> int:
        nonlocal failed, targets
        if by_query:
            targets = await _matching(client, args)
            if not targets:
                where = "" if args.all_namespaces else f" in {namespace_of(args)} namespace"
                print(f"No resources found{where}.", file=sys.stderr)
        pending: list[tuple[kinds.Kind, str, str, str]] = []
        for kind, namespace, name in targets:
            try:
                last = await client.delete(kind.name, name, scope(kind, namespace), grace,
                                           propagation_policy=policy)
            except NotFound:
                if not args.ignore_not_found:
                    print(not_found(kind, name), file=sys.stderr)
                    failed = True
                continue
            print(deleted_line(kind, name), flush=True)
            pending.append((kind, namespace, name, last.metadata.uid))
        if args.wait:
            for kind, namespace, name, uid in pending:
                try:
                    await asyncio.wait_for(wait_gone(client, kind=kind, namespace=scope(kind, namespace),
                                                     name=name, uid=uid), timeout=args.timeout)
                except asyncio.TimeoutError:
                    raise CliError(f"timed out waiting for {kind.name.lower()}/{name} to be deleted") from None
        return 1 if failed else 0

    if not targets and not by_query:
        return 1 if failed else 0
    return call_api(args, delete_all)


async def wait_gone(client: ApiClient, *, kind: kinds.Kind, namespace: str, name: str, uid: str = "") -> None:
    """Return once `name` (the object of this uid, if given) no longer exists:
    an object of the same name made anew, say by its controller, is another one."""
    def same(obj: object) -> bool:
        return obj is not None and obj.metadata.name == name and (not uid or obj.metadata.uid == uid)

    objs, revision = await client.list(kind.name, namespace)
    if not any(same(o) for o in objs):
        return
    # Closed before the client's channel is (an open watch would be cut by it).
    async with contextlib.aclosing(client.watch(kind.name, namespace, resource_version=revision)) as events:
        async for event_type, obj, _rv in events:
            if obj is not None and obj.metadata.name == name and (event_type == "DELETED" or not same(obj)):
                return
