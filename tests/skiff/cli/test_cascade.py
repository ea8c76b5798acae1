"""Owners and garbage collection through the real CLI on a real control plane
(etcd, the garbage collector as the control plane runs it): `skiff delete
--cascade=background|foreground|orphan` on ConfigMaps owning Secrets and
ConfigMaps, chains, two owners, cycles, and ownerReferences refused when
malformed. The GC's logic in detail: tests/controlplane/controllers/test_garbagecollector.py."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.etcd

HOLD = "example.com/hold"


def manifest(kind: str, name: str, *owners: tuple[str, str, str], block: bool = False, finalizers=()) -> str:
    """A ConfigMap or Secret owned by `owners` ((kind, name, uid) each)."""
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    if owners:
        obj["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": k, "name": n, "uid": u, "blockOwnerDeletion": block} for k, n, u in owners]
    if finalizers:
        obj["metadata"]["finalizers"] = list(finalizers)
    return json.dumps(obj)


@pytest.fixture
def cli(skiff, controlplane):
    class Cli:
        def __call__(self, *args: str, input: str | None = None):
            return skiff(*args, server=controlplane, input=input)

        def apply(self, *documents: str) -> None:
            for doc in documents:
                result = self("apply", "-f", "-", input=doc)
                assert result.returncode == 0, result.stderr

        def create(self, kind: str, name: str, *owners: str, block: bool = False, finalizers=()) -> tuple:
            """Create and return (kind, name, uid); owners are ConfigMap names."""
            refs = [self.ref("ConfigMap", o) for o in owners]
            self.apply(manifest(kind, name, *refs, block=block, finalizers=finalizers))
            return self.ref(kind, name)

        def ref(self, kind: str, name: str) -> tuple[str, str, str]:
            uid = self("get", kind.lower(), name, "-o", "jsonpath={.metadata.uid}")
            assert uid.returncode == 0 and uid.stdout, uid.stderr
            return kind, name, uid.stdout.strip()

        def names(self, resource: str) -> list[str]:
            result = self("get", resource, "-o", "name")
            assert result.returncode == 0, result.stderr
            return sorted(result.stdout.split())

        def field(self, resource: str, name: str, path: str) -> str:
            result = self("get", resource, name, "-o", f"jsonpath={path}")
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        def until(self, check, what: str, timeout: float = 60):
            deadline = time.monotonic() + timeout
            while not (result := check()):
                assert time.monotonic() < deadline, f"{what} not reached in {timeout:g}s"
                time.sleep(0.2)
            return result

    return Cli()


def test_delete_background_by_default_takes_the_dependents_and_a_two_level_chain(cli):
    cli.create("ConfigMap", "owner")
    cli.create("ConfigMap", "other")
    cli.create("Secret", "dep-a", "owner")
    cli.create("Secret", "dep-b", "owner")
    cli.create("Secret", "kept", "other")
    _, _, middle_uid = cli.create("Secret", "middle", "owner")
    cli.apply(manifest("ConfigMap", "bottom", ("Secret", "middle", middle_uid)))

    deleted = cli("delete", "configmap", "owner")
    assert (deleted.returncode, deleted.stdout) == (0, 'configmap "owner" deleted\n'), deleted.stderr
    cli.until(lambda: cli.names("secrets") == ["secret/kept"], "the dependents collected")
    cli.until(lambda: cli.names("configmaps") == ["configmap/other"], "the grandchild collected")


def test_delete_foreground_removes_the_blocking_dependents_before_the_owner(cli):
    cli.create("ConfigMap", "owner")
    cli.create("Secret", "held", "owner", block=True, finalizers=[HOLD])
    cli.create("Secret", "free", "owner", block=True)

    deleted = cli("delete", "cm", "owner", "--cascade=foreground", "--wait=false")
    assert (deleted.returncode, deleted.stdout) == (0, 'configmap "owner" deleted\n'), deleted.stderr
    cli.until(lambda: cli.names("secrets") == ["secret/held"], "the free dependent deleted")
    cli.until(lambda: cli.field("secret", "held", "{.metadata.deletionTimestamp}"), "the held dependent marked")
    # The owner waits for "held", whose own finalizer keeps it.
    assert cli.field("cm", "owner", "{.metadata.finalizers}") == '["foregroundDeletion"]'
    assert cli.field("cm", "owner", "{.metadata.deletionTimestamp}")
    released = cli("patch", "secret", "held", "--type=json", "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert released.returncode == 0, released.stderr
    cli.until(lambda: cli.names("configmaps") == [], "the owner gone once its dependents are")

    # With the wait (the default), the owner - and so its blocking dependents - are gone when delete returns.
    cli.create("ConfigMap", "waited")
    cli.create("Secret", "child", "waited", block=True)
    _, _, child_uid = cli.ref("Secret", "child")
    cli.apply(manifest("ConfigMap", "grandchild", ("Secret", "child", child_uid), block=True))
    deleted = cli("delete", "cm", "waited", "--cascade=foreground", "--timeout=60s")
    assert (deleted.returncode, deleted.stdout) == (0, 'configmap "waited" deleted\n'), deleted.stderr
    assert (cli.names("secrets"), cli.names("configmaps")) == ([], [])


def test_delete_orphan_leaves_the_dependents_without_the_reference(cli):
    cli.create("ConfigMap", "owner")
    cli.create("ConfigMap", "other")
    cli.create("Secret", "only", "owner", block=True)
    cli.create("Secret", "both", "owner", "other")

    deleted = cli("delete", "configmap", "owner", "--cascade=orphan")
    assert (deleted.returncode, deleted.stdout) == (0, 'configmap "owner" deleted\n'), deleted.stderr
    assert cli.names("configmaps") == ["configmap/other"]
    assert cli.names("secrets") == ["secret/both", "secret/only"]
    assert cli.field("secret", "only", "{.metadata.ownerReferences}") == ""
    assert cli.field("secret", "both", "{.metadata.ownerReferences[*].name}") == "other"

    # kubectl's legacy boolean: false is orphan, with its warning.
    cli.create("ConfigMap", "legacy")
    cli.create("Secret", "legacy-dep", "legacy")
    deleted = cli("delete", "cm", "legacy", "--cascade=false")
    assert deleted.returncode == 0, deleted.stderr
    assert "--cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan" in deleted.stderr
    assert cli.field("secret", "legacy-dep", "{.metadata.ownerReferences}") == ""


def test_a_dependent_with_two_owners_stays_while_one_lives(cli):
    cli.create("ConfigMap", "first")
    cli.create("ConfigMap", "second")
    cli.create("Secret", "shared", "first", "second")
    assert cli("delete", "cm", "first").returncode == 0
    cli.until(lambda: cli.field("secret", "shared", "{.metadata.ownerReferences[*].name}") == "second",
              "the reference to the deleted owner dropped")
    assert cli("delete", "cm", "second").returncode == 0
    cli.until(lambda: cli.names("secrets") == [], "collected with its last owner")


def test_a_dependent_is_collected_by_its_owners_uid_not_its_name(cli):
    """An owner of that name with another uid is not the owner (Kubernetes checks the uid)."""
    cli.create("ConfigMap", "owner")
    cli.create("Secret", "live-owner", "owner")
    cli.apply(manifest("Secret", "stale-owner", ("ConfigMap", "owner", "00000000-0000-4000-8000-000000000000")))
    cli.until(lambda: cli.names("secrets") == ["secret/live-owner"], "the dependent of another uid collected")


@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_a_cycle_of_owners_is_deleted_without_hanging(cli, cascade):
    a = cli.create("ConfigMap", "ring-a")
    b = cli.create("ConfigMap", "ring-b", "ring-a", block=True)
    cli.apply(manifest("ConfigMap", "ring-a", b, block=True))          # a is owned by b: a cycle
    assert cli.field("cm", "ring-a", "{.metadata.ownerReferences[0].uid}") == b[2]
    cli.create("ConfigMap", "outside")
    deleted = cli("delete", "cm", "ring-a", f"--cascade={cascade}", "--timeout=60s")
    assert (deleted.returncode, deleted.stdout) == (0, 'configmap "ring-a" deleted\n'), deleted.stderr
    assert a[2] != b[2]
    cli.until(lambda: cli.names("configmaps") == ["configmap/outside"], "the whole cycle gone")


def test_bad_cascade_values_and_owner_references_are_refused(cli):
    cli.create("ConfigMap", "owner")
    bad = cli("delete", "cm", "owner", "--cascade=sideways")
    assert bad.returncode != 0
    assert 'invalid cascade value (sideways). Must be "background", "foreground", or "orphan".' in bad.stderr
    assert cli.names("configmaps") == ["configmap/owner"]
    missing_uid = cli("apply", "-f", "-", input=manifest("Secret", "dep", ("ConfigMap", "owner", "")))
    assert missing_uid.returncode != 0
    assert "metadata.ownerReferences[0].uid: uid must not be empty" in missing_uid.stderr
    assert cli.names("secrets") == []


def test_deleting_a_deployment_takes_its_replicaset_and_pods(cli):
    created = cli("create", "deployment", "web", "--image=busybox", "--replicas=2")
    assert created.returncode == 0, created.stderr
    cli.until(lambda: len(cli.names("pods")) == 2, "the deployment's pods created")
    assert len(cli.names("replicasets")) == 1
    deleted = cli("delete", "deployment", "web")
    assert (deleted.returncode, deleted.stdout) == (0, 'deployment.apps "web" deleted\n'), deleted.stderr
    cli.until(lambda: cli.names("replicasets") == [] and cli.names("pods") == [],
              "the replicaset and its pods collected")
