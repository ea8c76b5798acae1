"""`skiff auth can-i VERB RESOURCE[/NAME] [--subresource S] [-n NS | -A] [--as USER [--as-group G]]`:
may I (or USER) do this? Prints `yes` (exit 0) or `no` (exit 1), as kubectl.

    skiff auth can-i list pods -n team          yes
    skiff auth can-i create pods --subresource exec --as alice -n team   no

The server answers with its authorizer (decision 32: system:masters, nodes, RBAC); an
insecure cluster answers yes to everything. Asking about another user (--as) needs the
right to impersonate users, as in Kubernetes.
"""
from __future__ import annotations

import argparse

from skiff.api import kinds
from skiff.cli._common import CliError, call_api
from skiff.client import ApiClient

DEFAULT_NAMESPACE = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("auth", help="inspect authorization")
    sub = p.add_subparsers(dest="auth_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("can-i", help="check whether an action is allowed",
                       description="Prints yes (exit 0) or no (exit 1), as kubectl auth can-i.")
    c.add_argument("verb", metavar="VERB", help="get, list, watch, create, update, patch, delete, ... or *")
    c.add_argument("resource", metavar="TYPE[.GROUP][/NAME]", help="pods, deployments.apps, pods/web, ...")
    c.add_argument("--subresource", default="", help="e.g. log, exec, status, scale")
    c.add_argument("-n", "--namespace", default=None, metavar="NS", help="the namespace (default: default)")
    c.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    c.add_argument("--as", dest="as_user", default="", metavar="USER", help="ask about USER (impersonation)")
    c.add_argument("--as-group", action="append", default=[], metavar="GROUP", help="with --as: USER's groups")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit code answers")
    c.set_defaults(func=run)


def _target(text: str) -> tuple[str, str, str, bool]:
    """(resource, API group, name, namespaced) for `TYPE[.GROUP][/NAME]`; an unknown type is asked as typed."""
    type_, _, name = text.partition("/")
    if not type_:
        raise CliError(f"invalid resource {text!r}: expected TYPE[.GROUP][/NAME]")
    for candidate in (type_, type_.partition(".")[0]):
        try:
            kind = kinds.kind_for_resource(candidate)
        except kinds.UnknownKind:
            continue
        return kind.resource, kind.api_version.rpartition("/")[0], name, kind.namespaced
    resource, _, group = type_.partition(".")
    return resource, group, name, True


def run(args: argparse.Namespace) -> int:
    if args.as_group and not args.as_user:
        raise CliError("--as-group needs --as")
    resource, group, name, namespaced = _target(args.resource)
    namespace = "" if args.all_namespaces or not namespaced else (args.namespace or DEFAULT_NAMESPACE)

    async def ask(client: ApiClient) -> int:
        allowed = await client.access_review(verb=args.verb, resource=resource, subresource=args.subresource,
                                             namespace=namespace, name=name, api_group=group,
                                             user=args.as_user, groups=tuple(args.as_group))
        if not args.quiet:
            print("yes" if allowed else "no")
        return 0 if allowed else 1

    return call_api(args, ask)
