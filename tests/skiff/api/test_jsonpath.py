"""skiff.api.jsonpath: kubectl's JSONPath templates and custom columns."""
from __future__ import annotations

import pytest

from skiff.api.jsonpath import JsonPathError, column_values, parse, parse_custom_columns, \
    parse_custom_columns_file, render

PODS = {"kind": "List", "items": [
    {"metadata": {"name": "a", "labels": {"app": "web", "app.kubernetes.io/name": "x"}},
     "spec": {"nodeName": "n1", "containers": [{"name": "m", "image": "busybox"}, {"name": "s", "image": "envoy"}]},
     "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "restarts": 3}},
    {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "m", "image": "nginx"}]},
     "status": {"conditions": [{"type": "Ready", "status": "False"}], "restarts": 0}},
]}


@pytest.mark.parametrize("template, expected", [
    ("{.items[*].metadata.name}", "a b"),
    ('{range .items[*]}{.metadata.name}{"\\n"}{end}', "a\nb\n"),
    ("{range .items[*]}[{.metadata.name},{.spec.nodeName}] {end}", "[a,n1] [b,] "),
    ('{.items[?(@.metadata.name=="b")].spec.containers[0].image}', "nginx"),
    ('{.items[0].status.conditions[?(@.type=="Ready")].status}', "True"),
    ("{.items[?(@.status.restarts>1)].metadata.name}", "a"),
    ("{.items[?(@.spec.nodeName)].metadata.name}", "a"),
    ("{..image}", "busybox envoy nginx"),
    ("{.items[0].spec.containers[-1:].name}", "s"),
    ("{.items[-1].metadata.name}", "b"),
    ("{.items[0:2:1].metadata.name}", "a b"),
    ("{.items[0].metadata.labels}", '{"app":"web","app.kubernetes.io/name":"x"}'),
    ("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", "x"),
    ("{.items[0].metadata.labels['app.kubernetes.io/name']}", "x"),
    ("{.items[0].spec.containers[0]['name','image']}", "m busybox"),
    ("{.items[1].status.restarts}", "0"),
    ("{.kind} has {.items[*].metadata.name}", "List has a b"),
    ("{.nothing.here}", ""),
    ("{.items[7].metadata.name}", ""),
    ("{@.kind}", "List"),
    ("{$.kind}", "List"),
    ("plain", "plain"),
])
def test_templates(template, expected):
    assert render(template, PODS) == expected


@pytest.mark.parametrize("template, problem", [
    ("{.x[", "unterminated array"),
    ("{.metadata.name", "unclosed action"),
    ("{.x]}", "unrecognized character in action: U+005D ']'"),
    ('{.items[?(@.name=="m"]}', "unterminated filter"),
    ("{end}", "not in range, nothing to end"),
    ("{range .items[*]}{.a}", "unclosed range: missing {end}"),
    ("{.items[a]}", "invalid array index a"),
])
def test_bad_templates_are_named(template, problem):
    with pytest.raises(JsonPathError) as info:
        parse(template)
    assert str(info.value) == f"error parsing jsonpath {template}, {problem}"


def test_custom_columns():
    columns = parse_custom_columns("NAME:.metadata.name,NODE:.spec.nodeName,IMAGES:.spec.containers[*].image")
    assert [c.header for c in columns] == ["NAME", "NODE", "IMAGES"]
    assert column_values(columns, PODS["items"][0]) == ["a", "n1", "busybox,envoy"]
    assert column_values(columns, PODS["items"][1]) == ["b", "<none>", "nginx"]
    from_file = parse_custom_columns_file("NAME  NODE\n.metadata.name  {.spec.nodeName}\n")
    assert column_values(from_file, PODS["items"][0]) == ["a", "n1"]


@pytest.mark.parametrize("spec, message", [
    ("", "custom-columns format specified but no custom columns given"),
    ("NAME", "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"),
    ("NAME:.metadata.name,NODE:.spec[", "error parsing jsonpath {.spec[}, unterminated array"),
])
def test_bad_custom_columns_are_named(spec, message):
    with pytest.raises(JsonPathError) as info:
        parse_custom_columns(spec)
    assert str(info.value) == message
