"""`skiff certificate approve|deny NAME...`: decide CertificateSigningRequests
by hand, as `kubectl certificate approve|deny` (decision 36). The condition is
Approved (reason KubectlApprove) or Denied (KubectlDeny); the cluster's signer
then issues an approved request's certificate. A request already decided the
same way is left as it is; Approved and Denied exclude each other (the server
refuses, in Kubernetes' words).
"""
from __future__ import annotations

import argparse
import sys

from skiff.api.kinds.certificatesigningrequest import add_condition, condition
from skiff.cli._common import call_api
from skiff.client import ApiClient, NotFound

QUALIFIED = "certificatesigningrequest.certificates.k8s.io"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("certificate", help="approve or deny certificate signing requests")
    sub = p.add_subparsers(dest="certificate_command", metavar="SUBCOMMAND", required=True)
    for verb in ("approve", "deny"):
        c = sub.add_parser(verb, help=f"{verb} certificate signing requests")
        c.add_argument("names", nargs="+", metavar="NAME")
        c.add_argument("--force", action="store_true", help="update the request even if already decided")
        c.set_defaults(func=run, verb=verb)


def run(args: argparse.Namespace) -> int:
    type_ = "Approved" if args.verb == "approve" else "Denied"
    reason = "KubectlApprove" if args.verb == "approve" else "KubectlDeny"
    message = f"This CSR was {'approved' if args.verb == 'approve' else 'denied'} by skiff certificate {args.verb}."

    async def decide(client: ApiClient) -> int:
        status = 0
        for name in args.names:
            try:
                obj = await client.get("CertificateSigningRequest", name, "")
            except NotFound:
                print(f'Error from server (NotFound): certificatesigningrequests.certificates.k8s.io "{name}" '
                      'not found', file=sys.stderr)
                status = 1
                continue
            if condition(obj, type_) is None or args.force:
                await client.update_status(add_condition(obj, type_, reason, message))
            print(f"{QUALIFIED}/{name} {'approved' if type_ == 'Approved' else 'denied'}")
        return status

    return call_api(args, decide)
