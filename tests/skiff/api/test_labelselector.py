from proto.skiff.v1 import apps_pb2
from skiff.api import labelselector


def _sel(labels=None, exprs=()):
    sel = apps_pb2.LabelSelector(match_labels=labels or {})
    for key, op, values in exprs:
        sel.match_expressions.add(key=key, operator=op, values=values)
    return sel


def test_match_labels_and_expressions_all_have_to_match():
    sel = _sel({"app": "web"}, [("tier", "In", ["frontend", "cache"]), ("legacy", "DoesNotExist", [])])
    assert labelselector.matches(sel, {"app": "web", "tier": "cache"})
    assert not labelselector.matches(sel, {"app": "web", "tier": "db"})
    assert not labelselector.matches(sel, {"app": "web", "tier": "cache", "legacy": "1"})
    assert not labelselector.matches(sel, {"tier": "cache"})


def test_text_is_kubectls():
    sel = _sel({"app": "web"}, [("tier", "NotIn", ["b", "a"]), ("gpu", "Exists", [])])
    assert labelselector.to_text(sel) == "app=web,tier notin (a,b),gpu"


def test_validate_names_the_bad_expression():
    errors = labelselector.validate(_sel(exprs=[("a", "In", []), ("b", "Near", ["x"]), ("c", "Exists", ["x"])]),
                                    "spec.selector")
    assert [e.path for e in errors] == ["spec.selector.matchExpressions[0].values",
                                        "spec.selector.matchExpressions[1].operator",
                                        "spec.selector.matchExpressions[2].values"]
