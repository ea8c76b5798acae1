"""`skiff create -f FILE` and `skiff create deployment|job`, as kubectl's.

    skiff create -f FILE|DIR|-       create the manifests' objects (no last-applied
                                     annotation: AlreadyExists if one is there)
    skiff create deployment NAME --image IMAGE [--replicas N] [--port P] [-- CMD]
    skiff create job NAME --image IMAGE [-- CMD]
    skiff create job NAME --from=cronjob/NAME
    skiff create service clusterip|nodeport|loadbalancer NAME --tcp=P[:T]   (skiff/cli/expose.py)

The Deployment kubectl makes: labels, selector and template labels `app=NAME`,
one container per --image named after the image (`busybox:1.36` -> busybox).
A Job from a CronJob is its jobTemplate, owned by the CronJob and annotated
`cronjob.kubernetes.io/instantiate: manual`.
"""
from __future__ import annotations

import argparse
import re
import sys

from proto.skiff.v1 import apps_pb2
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import create_and_report
from skiff.client import AlreadyExists, ApiClient, NotFound


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("create", help="create an object from the command line",
                              description="Create objects from manifests (-f), or one object from the "
                                          "command line. Unlike apply, create stores no "
                                          "last-applied-configuration and fails if the object exists.")
    p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-",
                   help="a manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable)")
    add_namespace_flags(p)
    p.set_defaults(func=run_files)
    what = p.add_subparsers(dest="what", metavar="KIND")
    d = what.add_parser(
        "deployment", aliases=["deploy"], help="create a deployment",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a deployment with the given name.",
        epilog="examples:\n  skiff create deployment web --image busybox --replicas 3 -- sleep 3600")
    d.add_argument("name", metavar="NAME")
    d.add_argument("--image", action="append", required=True, metavar="IMAGE",
                   help="a container's image (repeat for several containers)")
    d.add_argument("--replicas", type=int, default=1, metavar="N", help="number of replicas (default 1)")
    d.add_argument("--port", type=int, default=0, metavar="PORT", help="the port the container exposes")
    add_namespace_flags(d)
    d.set_defaults(func=run_deployment, takes_command=True)
    j = what.add_parser(
        "job", help="create a job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a job with the given name, from an image or from a cron job's template.",
        epilog="examples:\n  skiff create job once --image busybox -- echo hi\n"
               "  skiff create job hello-now --from=cronjob/hello")
    j.add_argument("name", metavar="NAME")
    j.add_argument("--image", metavar="IMAGE", help="the container's image")
    j.add_argument("--from", dest="source", metavar="cronjob/NAME", help="the cron job whose template to use")
    add_namespace_flags(j)
    j.set_defaults(func=run_job, takes_command=True)
    from skiff.cli.expose import register_create
    register_create(what)
    from skiff.cli.create_auth import register as register_auth   # token, serviceaccount, rolebinding
    register_auth(what)


def run_files(args: argparse.Namespace) -> int:
    """`create -f`: every valid document created in order; the bad ones listed and skipped."""
    from skiff.api.printers import name_of
    from skiff.cli.apply import document_error, load_documents
    from skiff.client import ApiError, Unavailable

    if not args.filename:
        raise CliError("give -f FILE, or a kind to create: deployment, job")
    documents, failed = load_documents(args.filename, namespace=args.namespace)

    async def create_all(client: ApiClient) -> int:
        nonlocal failed
        for doc in documents:
            try:
                created = await client.create(doc.obj)
            except Unavailable:
                raise
            except AlreadyExists as exc:
                print(f"Error from server (AlreadyExists): {exc.message}", file=sys.stderr)
                failed = True
                continue
            except ApiError as exc:
                print(document_error(doc, exc), file=sys.stderr)
                failed = True
                continue
            print(f"{name_of(created)} created", flush=True)
        return 1 if failed else 0

    if not documents:
        return 1 if failed else 0
    return call_api(args, create_all)


def container_name(image: str) -> str:
    """kubectl's: the image's last path part without tag or digest, made a DNS label."""
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-")[:63] or "container"


def build(name: str, images: list[str], *, replicas: int, port: int, command: list[str]) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.metadata.labels["app"] = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    used: set[str] = set()
    for image in images:
        cname = container_name(image)
        while cname in used:  # two of one image: busybox, busybox-1 ...
            cname = f"{container_name(image)}-{len(used)}"
        used.add(cname)
        c = d.spec.template.spec.containers.add(name=cname, image=image)
        if port:
            c.ports.add(container_port=port)
        if command and len(images) == 1:
            c.command.extend(command)
    return d


def run_deployment(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CliError("--replicas must be greater than or equal to 0")
    if args.trailing and len(args.image) > 1:
        raise CliError("cannot specify multiple --image options and command")
    d = build(args.name, args.image, replicas=args.replicas, port=args.port, command=args.trailing)
    d.metadata.namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        await create_and_report(client, d, exists=f'deployments.apps "{args.name}" already exists')
        return 0
    return call_api(args, body)


def run_job(args: argparse.Namespace) -> int:
    from proto.skiff.v1 import batch_pb2

    if bool(args.image) == bool(args.source):
        raise CliError("either --image or --from must be specified")
    namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        if args.source:
            kind, _, name = args.source.partition("/")
            if kind.lower() not in ("cronjob", "cronjobs", "cj") or not name:
                raise CliError(f"from must be an existing cronjob: {args.source}")
            try:
                cj = await client.get("CronJob", name, namespace)
            except NotFound:
                raise CliError(f'cronjobs.batch "{name}" not found') from None
            job = batch_pb2.Job(api_version="batch/v1", kind="Job")
            job.metadata.labels.update(cj.spec.job_template.metadata.labels)
            job.metadata.annotations.update(cj.spec.job_template.metadata.annotations)
            job.metadata.annotations["cronjob.kubernetes.io/instantiate"] = "manual"
            job.metadata.owner_references.add(api_version="batch/v1", kind="CronJob", name=cj.metadata.name,
                                              uid=cj.metadata.uid, controller=True)
            job.spec.CopyFrom(cj.spec.job_template.spec)
        else:
            job = batch_pb2.Job(api_version="batch/v1", kind="Job")
            c = job.spec.template.spec.containers.add(name=args.name, image=args.image)
            c.command.extend(args.trailing)
            job.spec.template.spec.restart_policy = "Never"
        job.metadata.name = args.name
        job.metadata.namespace = namespace
        await create_and_report(client, job, exists=f'jobs.batch "{args.name}" already exists')
        return 0
    return call_api(args, body)
