"""controlplane/rest/apply.py: server-side apply's managers, conflicts and merge, as pure functions."""
from __future__ import annotations

import pytest

from controlplane.rest import apply

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "nginx"}]}}


def test_keyed_list_items_are_fields_of_their_own():
    live = apply.apply(None, POD, manager="a", force=False)
    theirs = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
              "spec": {"containers": [{"name": "d", "image": "nginx:2"}]}}
    with pytest.raises(apply.ApplyConflict) as conflict:
        apply.apply(live, theirs, manager="b", force=False)
    assert conflict.value.conflicts == [("a", ".spec.containers[name=d].image")]
    same = {**theirs, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    agreed = apply.apply(live, same, manager="b", force=False)   # the same value is no conflict
    assert set(apply.managers(agreed)) == {"a", "b"}


def test_forced_fields_leave_the_other_configuration_and_dropped_fields_go():
    live = apply.apply(None, POD, manager="a", force=False)
    theirs = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
              "spec": {"containers": [{"name": "d", "image": "nginx:2"}]}}
    forced = apply.apply(live, theirs, manager="b", force=True)
    assert {c["name"]: c["image"] for c in forced["spec"]["containers"]} == {"c": "busybox", "d": "nginx:2"}
    assert apply.managers(forced)["a"]["spec"]["containers"] == [{"name": "c", "image": "busybox"}]
    only_c = {**POD, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    again = apply.apply(forced, only_c, manager="a", force=False)
    assert sorted(c["name"] for c in again["spec"]["containers"]) == ["c", "d"]   # d is b's now
