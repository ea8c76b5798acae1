"""Issue 15, items 6 and 8: the manifest reader's answers to hostile YAML name
the file, the document, the line and the field — never a RecursionError or
ParseDict's text at line 1."""
from skiff.api import manifest

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: [{{name: c, image: {image}}}]\n"


def errors(text):
    out = []
    for doc in manifest.parse_text(text, source="m.yaml"):
        out += [doc] if isinstance(doc, manifest.ManifestError) else list(doc.errors)
    return out


def test_a_document_nested_1000_levels_deep_is_an_error_with_its_line():
    text = POD.format(name="a", image="busybox") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n" \
        + "data:\n  x: " + "[" * 1000 + "]" * 1000 + "\n"
    [error] = errors(text)
    assert (error.document, error.documents, error.line) == (2, 2, 12)
    assert "nested more than 100 levels deep" in error.message
    block = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n" + "".join(
        "  " * i + f"k{i}:\n" for i in range(1, 400))
    [error] = errors(block)
    assert "nested more than" in error.message and error.line is not None


def test_a_bad_timestamp_names_its_field_and_line():
    text = POD.format(name="a", image="busybox").replace("  name: a\n", "  name: a\n  creationTimestamp: soon\n")
    [error] = errors(text)
    assert (error.path, error.line) == ("metadata.creationTimestamp", 5)
    assert "expected a timestamp (RFC 3339" in error.message and "soon" in error.message


def test_yaml_timestamps_are_read_as_rfc3339():
    text = ("apiVersion: v1\nkind: Event\nmetadata: {name: e}\ninvolvedObject: {kind: Pod, name: x}\n"
            "firstTimestamp: 2001-12-14 21:59:43.10 -5\nlastTimestamp: 2024-01-01\n")
    [doc] = manifest.parse_text(text, source="e.yaml")
    assert doc.ok, doc.errors
    assert doc.obj.first_timestamp.ToJsonString() == "2001-12-15T02:59:43.100Z"
    assert doc.obj.last_timestamp.seconds == 1704067200


def test_tags_are_named():
    text = POD.format(name="!foo a", image="!!binary aGVsbG8=")
    got = {(e.path, e.message) for e in errors(text)}
    assert got == {("metadata.name", "the YAML tag !foo is not supported: write the value without it"),
                   ("spec.containers[0].image", "the YAML tag !!binary is not supported: write the value without it")}


def test_a_wrong_typed_api_version_kind_or_name_gives_one_message_each():
    text = POD.format(name="{a: 1}", image="busybox").replace("apiVersion: v1", "apiVersion: [v1]")
    got = [(e.path, e.message) for e in errors(text)]
    assert got == [("apiVersion", "expected a string, got a list"),
                   ("metadata.name", "expected a string, got an object")]
    [error] = errors(POD.format(name="a", image="busybox").replace("kind: Pod", "kind: [Pod]"))
    assert (error.path, error.message) == ("kind", "expected a string such as Pod, got a list")
    [error] = errors(POD.format(name="a", image="[busybox]"))
    assert error.path == "spec.containers[0].image" and "expected a string" in error.message


def test_label_key_errors_point_at_the_labels_line():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    \"bad key/../x!\": v\n"
    [error] = errors(text)
    assert (error.path, error.line) == ("metadata.labels", 5)
    assert str(error).startswith('m.yaml:5: document 1 of 1: metadata.labels: Invalid value: "bad key/../x!": ')


def test_aliases_that_expand_without_bound_are_refused_quickly():
    import time
    started = time.monotonic()
    bomb = ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n"
            "  initContainers: [&c {name: c, image: busybox, env: [" + ", ".join(["&e {name: A, value: b}"] +
                                                                         ["*e"] * 999) + "]}]\n"
            f"  containers: [{', '.join(['*c'] * 300)}]\n")
    [error] = errors(bomb)
    assert "expands to more than" in error.message and "aliases" in error.message
    assert time.monotonic() - started < 10
