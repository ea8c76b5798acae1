"""ServiceAccount (v1): the identity a pod's processes have towards the API
(issue 12 item 3, decision 35).

A pod runs as `spec.serviceAccountName` (admission defaults it to `default`,
which the serviceaccounts controller keeps in every namespace). Its token is
a signed JWT for the user `system:serviceaccount:NS:NAME`
(controlplane/serviceaccounts/tokens.py), mounted by the agent as a
projected volume unless `automountServiceAccountToken: false` (here or in the
pod) says no. Names are DNS subdomains (the generic check).
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import serviceaccounts_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy

DEFAULT_NAME = "default"
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"


def username(namespace: str, name: str) -> str:
    """Kubernetes' serviceaccount.MakeUsername."""
    return f"{USER_PREFIX}{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    """The groups a ServiceAccount's token authenticates with (system:authenticated added by the server)."""
    return (ALL_GROUP, f"{ALL_GROUP}:{namespace}")


def split_username(user: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:NS:NAME`; None for other users."""
    if not user.startswith(USER_PREFIX):
        return None
    namespace, sep, name = user[len(USER_PREFIX):].partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def new(namespace: str, name: str = DEFAULT_NAME) -> serviceaccounts_pb2.ServiceAccount:
    sa = serviceaccounts_pb2.ServiceAccount(api_version="v1", kind="ServiceAccount")
    sa.metadata.name, sa.metadata.namespace = name, namespace
    return sa


def automount(sa: Message | None, pod_spec: Message) -> bool:
    """Kubernetes' shouldAutomount: the pod's field wins, then the account's, else yes."""
    if pod_spec.HasField("automount_service_account_token"):
        return pod_spec.automount_service_account_token
    if sa is not None and sa.HasField("automount_service_account_token"):
        return sa.automount_service_account_token
    return True


class ServiceAccountStrategy(Strategy):
    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "SECRETS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, str(len(obj.secrets)), humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("Image pull secrets", ", ".join(s.name for s in obj.image_pull_secrets) or "<none>")
        text.multiline("Mountable secrets", ", ".join(s.name for s in obj.secrets) or "<none>")
        text.multiline("Tokens", "<none>")
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("ServiceAccount", "v1", "serviceaccounts", "service_account", serviceaccounts_pb2.ServiceAccount,
            namespaced=True, aliases=("serviceaccount", "sa"), strategy=ServiceAccountStrategy())
