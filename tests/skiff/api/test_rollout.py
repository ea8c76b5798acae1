import pytest

from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import rollout


def _template(image: str, **labels: str) -> apps_pb2.PodTemplateSpec:
    t = apps_pb2.PodTemplateSpec()
    t.metadata.labels.update({"app": "web", **labels})
    t.spec.containers.add(name="c", image=image)
    return t


def _rs(name: str, revision: int | None, image: str, owner: str = "d-uid") -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = name
    if revision is not None:
        rs.metadata.annotations[rollout.REVISION] = str(revision)
    rs.metadata.owner_references.add(kind="Deployment", uid=owner, controller=True)
    rs.spec.template.CopyFrom(_template(image, **{rollout.POD_TEMPLATE_HASH: name}))
    return rs


def test_hash_is_stable_short_and_ignores_its_own_label():
    h = rollout.pod_template_hash(_template("nginx:1.14"))
    assert h == rollout.pod_template_hash(_template("nginx:1.14"))
    assert h == rollout.pod_template_hash(_template("nginx:1.14", **{rollout.POD_TEMPLATE_HASH: "x"}))
    assert h != rollout.pod_template_hash(_template("nginx:1.16"))
    assert h != rollout.pod_template_hash(_template("nginx:1.14"), collision_count=1)
    assert 1 <= len(h) <= 10 and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_equal_ignore_hash():
    assert rollout.equal_ignore_hash(_template("a", **{rollout.POD_TEMPLATE_HASH: "1"}), _template("a"))
    assert not rollout.equal_ignore_hash(_template("a"), _template("b"))


def _deployment() -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.uid = "web", "d-uid"
    return d


def test_undo_goes_to_the_previous_revision_or_the_one_asked_for():
    d = _deployment()
    sets = [_rs("a", 1, "v1"), _rs("c", 3, "v3"), _rs("b", 2, "v2"), _rs("x", None, "vx")]
    assert rollout.rollback_target(d, sets)[0] == 2
    revision, rs = rollout.rollback_target(d, sets, 1)
    assert revision == 1 and rollout.rolled_back_template(rs) == _template("v1")
    with pytest.raises(rollout.RollbackError, match="unable to find specified revision 7 in history"):
        rollout.rollback_target(d, sets, 7)
    with pytest.raises(rollout.RollbackError, match="no last revision to roll back to"):
        rollout.rollback_target(d, sets[:1])
    with pytest.raises(rollout.RollbackError, match='no rollout history found for deployment "web"'):
        rollout.rollback_target(d, [])


def test_owned_by_reads_the_controller_reference():
    d = _deployment()
    assert [rs.metadata.name for rs in rollout.owned_by(d, [_rs("a", 1, "v"), _rs("b", 1, "v", owner="other")])] == ["a"]


def _status(generation=1, observed=1, replicas=3, updated=3, total=3, available=3, reason="NewReplicaSetAvailable"):
    d = _deployment()
    d.metadata.generation = generation
    d.spec.replicas = replicas
    s = d.status
    s.observed_generation, s.updated_replicas, s.replicas, s.available_replicas = observed, updated, total, available
    s.conditions.add(type="Progressing", status="True", reason=reason)
    return d


@pytest.mark.parametrize("kw, text, done", [
    ({"generation": 2}, "Waiting for deployment spec update to be observed...", False),
    ({"updated": 1}, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
     False),
    ({"total": 4}, 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
     False),
    ({"available": 2}, 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
     False),
    ({}, 'deployment "web" successfully rolled out', True),
])
def test_rollout_status_messages_are_kubectls(kw, text, done):
    assert rollout.status_message(_status(**kw)) == (text, done)


def test_rollout_status_fails_past_the_deadline():
    with pytest.raises(rollout.RolloutError, match='deployment "web" exceeded its progress deadline'):
        rollout.status_message(_status(updated=1, reason="ProgressDeadlineExceeded"))


def _ds_status(generation=1, observed=1, desired=3, updated=3, available=3, strategy="RollingUpdate"):
    ds = apps_pb2.DaemonSet()
    ds.metadata.name, ds.metadata.generation = "agent", generation
    ds.spec.update_strategy.type = strategy
    s = ds.status
    s.observed_generation, s.desired_number_scheduled = observed, desired
    s.updated_number_scheduled, s.number_available = updated, available
    return ds


@pytest.mark.parametrize("kw, text, done", [
    ({"generation": 2}, "Waiting for daemon set spec update to be observed...", False),
    ({"updated": 1}, 'Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been updated...',
     False),
    ({"available": 2}, 'Waiting for daemon set "agent" rollout to finish: 2 of 3 updated pods are available...',
     False),
    ({}, 'daemon set "agent" successfully rolled out', True),
])
def test_daemonset_rollout_status_messages_are_kubectls(kw, text, done):
    assert rollout.daemonset_status_message(_ds_status(**kw)) == (text, done)


def test_daemonset_rollout_status_needs_rolling_update():
    with pytest.raises(rollout.RolloutError, match="only available for RollingUpdate"):
        rollout.daemonset_status_message(_ds_status(strategy="OnDelete"))
