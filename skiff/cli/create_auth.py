"""`skiff create token|serviceaccount|rolebinding|clusterrolebinding`, as kubectl's
(decision 35):

    skiff create token NAME [--audience A]... [--duration 10m] [--bound-object-kind Pod
                            --bound-object-name P [--bound-object-uid U]]    prints the token
    skiff create serviceaccount NAME
    skiff create rolebinding NAME --clusterrole=R|--role=R [--user U]... [--group G]...
                                  [--serviceaccount NS:NAME]...
    skiff create clusterrolebinding NAME --clusterrole=R [--user U]... [--group G]... [--serviceaccount NS:NAME]...
"""
from __future__ import annotations

import argparse

from proto.skiff.v1 import rbac_pb2
from skiff.api.kinds import serviceaccount
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of, parse_duration
from skiff.cli._objects import object_label
from skiff.client import AlreadyExists, ApiClient

RBAC_GROUP = "rbac.authorization.k8s.io"


def register(what: argparse._SubParsersAction) -> None:
    t = what.add_parser("token", help="request a service account token",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Request a service account token (a signed JWT; TokenRequest).",
                        epilog="examples:\n  skiff create token default\n"
                               "  skiff create token robot --audience https://vault --duration 1h")
    t.add_argument("name", metavar="SERVICE_ACCOUNT_NAME")
    t.add_argument("--audience", action="append", default=[], metavar="A",
                   help="an intended audience of the token (repeatable; default: the API server)")
    t.add_argument("--duration", type=parse_duration, default=0, metavar="D",
                   help="requested lifetime, e.g. 10m, 1h (default: the server's, 1h; at least 10m)")
    t.add_argument("--bound-object-kind", default="", choices=["", "Pod", "Secret"],
                   help="the kind of the object the token is bound to")
    t.add_argument("--bound-object-name", default="", metavar="NAME")
    t.add_argument("--bound-object-uid", default="", metavar="UID")
    add_namespace_flags(t)
    t.set_defaults(func=run_token)
    s = what.add_parser("serviceaccount", aliases=["sa"], help="create a service account",
                        description="Create a service account with the given name.")
    s.add_argument("name", metavar="NAME")
    add_namespace_flags(s)
    s.set_defaults(func=run_serviceaccount)
    for cluster in (False, True):
        word = "clusterrolebinding" if cluster else "rolebinding"
        b = what.add_parser(word, help=f"create a {'ClusterRoleBinding' if cluster else 'RoleBinding'} "
                                       f"for a ClusterRole{'' if cluster else ' or Role'}",
                            description=f"Create a {word} for a particular "
                                        f"{'cluster role' if cluster else 'role or cluster role'}.")
        b.add_argument("name", metavar="NAME")
        b.add_argument("--clusterrole", default="", metavar="ROLE", help="the ClusterRole to bind")
        if not cluster:
            b.add_argument("--role", default="", metavar="ROLE", help="the Role to bind")
            add_namespace_flags(b)
        b.add_argument("--user", action="append", default=[], metavar="USER")
        b.add_argument("--group", action="append", default=[], metavar="GROUP")
        b.add_argument("--serviceaccount", action="append", default=[], metavar="NAMESPACE:NAME")
        b.set_defaults(func=run_binding, cluster=cluster)


def run_token(args: argparse.Namespace) -> int:
    if args.duration and args.duration < 0:
        raise CliError("--duration must be greater than or equal to 0")
    if args.bound_object_kind and not args.bound_object_name:
        raise CliError("--bound-object-name is required if --bound-object-kind is provided")
    if args.bound_object_name and not args.bound_object_kind:
        raise CliError("--bound-object-name can only be set if --bound-object-kind is provided")

    async def body(client: ApiClient) -> int:
        issued = await client.create_token(args.name, namespace_of(args), audiences=tuple(args.audience),
                                           expiration_seconds=int(args.duration) or None,
                                           bound_kind=args.bound_object_kind, bound_name=args.bound_object_name,
                                           bound_uid=args.bound_object_uid)
        print(issued.status.token)
        return 0
    return call_api(args, body)


def run_serviceaccount(args: argparse.Namespace) -> int:
    sa = serviceaccount.new(namespace_of(args), args.name)

    async def body(client: ApiClient) -> int:
        try:
            created = await client.create(sa)
        except AlreadyExists:
            raise CliError(f'serviceaccounts "{args.name}" already exists') from None
        print(f"{object_label(created)} created")
        return 0
    return call_api(args, body)


def binding(args: argparse.Namespace) -> rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding:
    role = getattr(args, "role", "")
    if bool(args.clusterrole) == bool(role):
        raise CliError("exactly one of clusterrole or role must be specified" if not args.cluster
                       else "--clusterrole is required")
    subjects = [rbac_pb2.Subject(kind="User", api_group=RBAC_GROUP, name=u) for u in args.user]
    subjects += [rbac_pb2.Subject(kind="Group", api_group=RBAC_GROUP, name=g) for g in args.group]
    for sa in args.serviceaccount:
        namespace, sep, name = sa.partition(":")
        if not sep or not namespace or not name:
            raise CliError(f"serviceaccount must be <namespace>:<name>, not {sa!r}")
        subjects.append(rbac_pb2.Subject(kind="ServiceAccount", namespace=namespace, name=name))
    ref = rbac_pb2.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole" if args.clusterrole else "Role",
                           name=args.clusterrole or role)
    if args.cluster:
        obj = rbac_pb2.ClusterRoleBinding(api_version=f"{RBAC_GROUP}/v1", kind="ClusterRoleBinding",
                                          role_ref=ref, subjects=subjects)
    else:
        obj = rbac_pb2.RoleBinding(api_version=f"{RBAC_GROUP}/v1", kind="RoleBinding", role_ref=ref,
                                   subjects=subjects)
        obj.metadata.namespace = namespace_of(args)
    obj.metadata.name = args.name
    return obj


def run_binding(args: argparse.Namespace) -> int:
    obj = binding(args)

    async def body(client: ApiClient) -> int:
        try:
            created = await client.create(obj)
        except AlreadyExists:
            raise CliError(f'{"clusterrolebindings" if args.cluster else "rolebindings"}.{RBAC_GROUP} '
                           f'"{args.name}" already exists') from None
        print(f"{object_label(created)} created")
        return 0
    return call_api(args, body)
