"""`skiff token create|list|delete`: bootstrap tokens, as `kubeadm token` (decision 36).

    skiff token create [TOKEN] [--ttl 24h] [--description D] [--groups G] [--print-join-command]
    skiff token list                      TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS
    skiff token delete TOKEN|ID ...

A token is a Secret `bootstrap-token-<id>` in kube-system (skiff/bootstraptoken.py).
`create` prints the token, or with --print-join-command the line a new machine runs:

    skiff join HOST:PORT --token <id>.<secret> --discovery-token-ca-cert-hash sha256:<hex>

HOST:PORT is the API's REST address as the cluster-info ConfigMap names it; the
hash is of the cluster CA's public key (the CA this client trusts). `create`
returns once cluster-info carries the token's signature, so the line works at once.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import sys

from proto.skiff.v1 import types_pb2
from skiff import bootstraptoken as bt
from skiff.api import humanize
from skiff.cli._common import CliError, call_api
from skiff.client import AlreadyExists, ApiClient, NotFound

SIGNED_WAIT_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("token", help="manage bootstrap tokens (kubeadm token)")
    sub = p.add_subparsers(dest="token_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("create", help="create a bootstrap token (and print the join command)")
    c.add_argument("token", nargs="?", default="", metavar="TOKEN", help="[a-z0-9]{6}.[a-z0-9]{16} (default: random)")
    c.add_argument("--ttl", default="24h", help="how long it is valid, e.g. 24h, 90m (0: never expires)")
    c.add_argument("--description", default="", help="a human-friendly description")
    c.add_argument("--groups", default=bt.DEFAULT_GROUP,
                   help="extra groups the token authenticates as (comma-separated, system:bootstrappers:...)")
    c.add_argument("--usages", default=",".join(bt.USAGES), help="signing,authentication")
    c.add_argument("--print-join-command", action="store_true",
                   help="print the whole `skiff join` line instead of only the token")
    c.set_defaults(func=create)
    ls = sub.add_parser("list", help="list the bootstrap tokens")
    ls.set_defaults(func=list_tokens)
    d = sub.add_parser("delete", help="delete bootstrap tokens")
    d.add_argument("tokens", nargs="+", metavar="TOKEN|ID")
    d.set_defaults(func=delete)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _secret(token: bt.BootstrapToken) -> types_pb2.Secret:
    s = types_pb2.Secret(api_version="v1", kind="Secret", type=bt.SECRET_TYPE)
    s.metadata.name, s.metadata.namespace = bt.SECRET_PREFIX + token.id, bt.NAMESPACE
    for k, v in bt.secret_data(token).items():
        s.data[k] = v
    return s


def _wanted(args: argparse.Namespace) -> bt.BootstrapToken:
    try:
        token_id, secret = bt.split(args.token or bt.generate())
        ttl = bt.parse_ttl(args.ttl)
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
        bt.validate_groups(groups)
    except bt.TokenError as exc:
        raise CliError(str(exc)) from None
    usages = tuple(u.strip() for u in args.usages.split(",") if u.strip())
    unknown = [u for u in usages if u not in bt.USAGES]
    if unknown or not usages:
        raise CliError(f"--usages: {', '.join(unknown) or 'none given'}: valid usages are signing, authentication")
    return bt.BootstrapToken(token_id, secret, _now() + ttl if ttl else None, usages, tuple(groups),
                             args.description)


async def _signed_cluster_info(client: ApiClient, token_id: str) -> types_pb2.ConfigMap:
    """cluster-info once it carries the token's signature (the control plane's bootstrap signer writes it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SIGNED_WAIT_SECONDS
    while True:
        try:
            info = await client.get("ConfigMap", bt.CLUSTER_INFO, bt.CLUSTER_INFO_NAMESPACE)
            if bt.JWS_PREFIX + token_id in info.data:
                return info
        except NotFound:
            pass
        if loop.time() > deadline:
            raise CliError(f"the cluster-info ConfigMap in {bt.CLUSTER_INFO_NAMESPACE} does not carry the token's "
                           f"signature after {SIGNED_WAIT_SECONDS:g}s: is this a secure cluster (skiff up --secure) "
                           "with its controllers running?")
        await asyncio.sleep(0.2)


def create(args: argparse.Namespace) -> int:
    token = _wanted(args)

    async def run(client: ApiClient) -> int:
        try:
            await client.create(_secret(token))
        except AlreadyExists:
            raise CliError(f'a token with id "{token.id}" already exists') from None
        if args.print_join_command:
            if "signing" not in token.usages:
                raise CliError("--print-join-command needs a token with the signing usage")
            from skiff.pki import ca_cert_hash
            info = await _signed_cluster_info(client, token.id)
            parsed = bt.parse_cluster_info_kubeconfig(info.data["kubeconfig"])
            server = parsed.server.removeprefix("https://")
            print(f"skiff join {server} --token {token.token} "
                  f"--discovery-token-ca-cert-hash {ca_cert_hash(parsed.ca_pem)}")
        else:
            print(token.token)
        return 0

    return call_api(args, run)


def _row(t: bt.BootstrapToken, now: datetime.datetime) -> list[str]:
    if t.expiration is None:
        ttl, expires = "<forever>", "<never>"
    else:
        left = (t.expiration - now).total_seconds()
        ttl = humanize.duration(int(round(left))) if left > 0 else "<invalid>"
        expires = bt.format_time(t.expiration)
    return [t.token, ttl, expires, ",".join(t.usages) or "<none>", t.description or "<none>",
            ",".join(t.groups) or "<none>"]


def list_tokens(args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        items, _ = await client.list("Secret", bt.NAMESPACE)
        rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
        now = _now()
        for s in items:
            if s.type != bt.SECRET_TYPE:
                continue
            try:
                rows.append(_row(bt.from_secret(s.metadata.name, s.type, dict(s.data)), now))
            except bt.TokenError as exc:
                print(f"[token] WARNING: {exc}", file=sys.stderr)
        if len(rows) > 1:
            print(humanize.format_table(rows), end="")
        return 0

    return call_api(args, run)


def delete(args: argparse.Namespace) -> int:
    ids = []
    for text in args.tokens:
        token_id = text.partition(".")[0]
        if "." in text:
            try:
                bt.split(text)
            except bt.TokenError as exc:
                raise CliError(str(exc)) from None
        elif not bt.TOKEN_RE.match(f"{token_id}.{'0' * 16}"):
            raise CliError(f'"{text}" is neither a token nor a token id ([a-z0-9]{{6}})')
        ids.append(token_id)

    async def run(client: ApiClient) -> int:
        status = 0
        for token_id in ids:
            try:
                await client.delete("Secret", bt.SECRET_PREFIX + token_id, bt.NAMESPACE)
                print(f'bootstrap token "{token_id}" deleted')
            except NotFound:
                print(f'error: bootstrap token "{token_id}" not found', file=sys.stderr)
                status = 1
        return status

    return call_api(args, run)
