"""`skiff autoscale deploy/NAME --min N --max M --cpu-percent P`: make a
HorizontalPodAutoscaler (autoscaling/v2) for a deployment or replica set, as
kubectl autoscale.

    skiff autoscale deploy/web --min 2 --max 10 --cpu-percent 50
    horizontalpodautoscaler.autoscaling/web autoscaled

Without --cpu-percent the API's default applies (CPU at 80 % of requests);
without --min, 1. The HPA takes the target's name unless --name is given.
"""
from __future__ import annotations

import argparse

from proto.skiff.v1 import autoscaling_pb2
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import intermixed, not_found, parse_resources
from skiff.client import AlreadyExists, ApiClient, NotFound

SCALABLE = ("Deployment", "ReplicaSet")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = intermixed(subparsers.add_parser(
        "autoscale", help="autoscale a deployment or replica set on CPU (a HorizontalPodAutoscaler)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a HorizontalPodAutoscaler that keeps the target's pods near a CPU utilization.",
        epilog="examples:\n  skiff autoscale deploy/web --min 2 --max 10 --cpu-percent 50\n"
               "  skiff autoscale rs frontend --max 5"))
    p.add_argument("resource", metavar="TYPE/NAME|TYPE NAME", nargs="+")
    p.add_argument("--min", type=int, default=-1, metavar="N", help="the lower limit of replicas (default 1)")
    p.add_argument("--max", type=int, required=True, metavar="N", help="the upper limit of replicas")
    p.add_argument("--cpu-percent", type=int, default=-1, metavar="P",
                   help="the target average CPU utilization, in percent of requests (default 80)")
    p.add_argument("--name", default="", help="the autoscaler's name (default: the target's)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def build(kind: str, name: str, *, hpa_name: str, minimum: int, maximum: int,
          cpu_percent: int) -> autoscaling_pb2.HorizontalPodAutoscaler:
    hpa = autoscaling_pb2.HorizontalPodAutoscaler(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler")
    hpa.metadata.name = hpa_name or name
    ref = hpa.spec.scale_target_ref
    ref.api_version, ref.kind, ref.name = "apps/v1", kind, name
    if minimum >= 0:
        hpa.spec.min_replicas = minimum
    hpa.spec.max_replicas = maximum
    if cpu_percent >= 0:
        hpa.spec.metrics.add(type="Resource", resource=autoscaling_pb2.ResourceMetricSource(
            name="cpu", target=autoscaling_pb2.MetricTarget(type="Utilization", average_utilization=cpu_percent)))
    return hpa


def run(args: argparse.Namespace) -> int:
    targets = [(r.kind, name) for r in parse_resources(args.resource) for name in r.names]
    if len(targets) != 1:
        raise CliError("exactly one resource must be specified as <resource> <name> or <resource>/<name>")
    [(kind, name)] = targets
    if kind.name not in SCALABLE:
        raise CliError(f"cannot autoscale a {kind.name}: only deployments and replicasets can be autoscaled")
    if args.max < 1 or (args.min >= 0 and args.max < args.min):
        raise CliError(f"--max={args.max} must be at least 1 and not less than --min")
    namespace = namespace_of(args)
    hpa = build(kind.name, name, hpa_name=args.name, minimum=args.min, maximum=args.max,
                cpu_percent=args.cpu_percent)
    hpa.metadata.namespace = namespace

    async def body(client: ApiClient) -> int:
        try:
            await client.get(kind.name, name, namespace)
        except NotFound:
            raise CliError(not_found(kind, name)) from None
        try:
            await client.create(hpa)
        except AlreadyExists:
            raise CliError(f'Error from server (AlreadyExists): horizontalpodautoscalers.autoscaling '
                           f'"{hpa.metadata.name}" already exists') from None
        print(f"horizontalpodautoscaler.autoscaling/{hpa.metadata.name} autoscaled")
        return 0
    return call_api(args, body)
