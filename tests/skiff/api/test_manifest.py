"""Manifest parsing: every bad input of issue 2 names file, document, field path
and line; good documents beside bad ones still parse; flow style, JSON,
directories and stdin are read."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import manifest

GOOD = """\
apiVersion: v1
kind: Pod
metadata:
  name: good
spec:
  containers:
  - name: c
    image: busybox
"""


def write(tmp_path: Path, text: str, name: str = "pod.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def only_error(docs: list, index: int = 0) -> manifest.ManifestError:
    doc = docs[index]
    assert isinstance(doc, manifest.Document) and not doc.ok and doc.obj is None
    assert len(doc.errors) == 1, [str(e) for e in doc.errors]
    return doc.errors[0]


def assert_names(error: manifest.ManifestError, *, source: str, document: int, documents: int,
                 path: str, line: int, words: tuple[str, ...] = ()) -> None:
    text = str(error)
    assert (error.source, error.document, error.documents, error.path, error.line) == \
        (source, document, documents, path, line), text
    assert text.startswith(f"{source}:{line}: document {document} of {documents}: "), text
    if path:
        assert f": {path}: " in text, text
    for word in words:
        assert word in text, text


def test_good_pod_parses_into_typed_message(tmp_path):
    path = write(tmp_path, GOOD + "    resources:\n      limits: {cpu: 1, memory: 64Mi}\n"
                               "      requests:\n        cpu: 0.5\n")
    [doc] = manifest.load([path])
    assert doc.ok and isinstance(doc.obj, types_pb2.Pod)
    assert doc.obj.metadata.name == "good"
    assert doc.obj.spec.containers[0].image == "busybox"
    # YAML numbers in quantities are kept as the text the user wrote.
    assert dict(doc.obj.spec.containers[0].resources.limits) == {"cpu": "1", "memory": "64Mi"}
    assert dict(doc.obj.spec.containers[0].resources.requests) == {"cpu": "0.5"}
    assert doc.label == "pod/good"


def test_flow_style_document(tmp_path):
    path = write(tmp_path, '{apiVersion: "v1", kind: "Pod", metadata: {name: "flow"}, '
                           'spec: {containers: [{name: "c", image: "busybox", command: ["sh", "-c", "echo hi"]}]}}\n')
    [doc] = manifest.load([path])
    assert doc.ok, [str(e) for e in doc.errors]
    assert list(doc.obj.spec.containers[0].command) == ["sh", "-c", "echo hi"]


def test_multi_document_with_separators_and_comments(tmp_path):
    path = write(tmp_path, "---\n# first\n" + GOOD + "---\n" + GOOD.replace("good", "second") + "---\n")
    docs = manifest.load([path])
    assert [d.obj.metadata.name for d in docs] == ["good", "second"]
    assert [(d.index, d.total) for d in docs] == [(1, 2), (2, 2)]
    assert docs[1].line == 12  # its apiVersion line, after the comment, GOOD and ---


def test_invalid_yaml_spoils_only_its_document(tmp_path):
    path = write(tmp_path, GOOD + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: [x\n---\n" + GOOD)
    docs = manifest.load([path])
    assert docs[0].ok and docs[2].ok
    error = only_error(docs, 1)
    assert error.document == 2 and error.documents == 3 and error.path == ""
    assert "invalid YAML" in str(error) and str(error).startswith(f"{path}:")
    assert 10 <= error.line <= 13


def test_unknown_kind(tmp_path):
    path = write(tmp_path, GOOD + "---\napiVersion: v1\nkind: StatefulSet\nmetadata: {name: d}\n")
    docs = manifest.load([path])
    assert docs[0].ok
    assert_names(only_error(docs, 1), source=path, document=2, documents=2, path="kind", line=11,
                 words=("StatefulSet", "Pod"))


def test_unknown_api_version(tmp_path):
    path = write(tmp_path, GOOD.replace("apiVersion: v1", "apiVersion: apps/v2"))
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="apiVersion", line=1, words=("apps/v2", "'v1'"))


def test_misspelt_field_suggests_the_right_one(tmp_path):
    path = write(tmp_path, GOOD + "    comand: [sh]\n")
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="spec.containers[0].comand", line=9, words=("unknown field", "did you mean 'command'"))


def test_snake_case_field_is_unknown(tmp_path):
    path = write(tmp_path, GOOD + "    ports:\n    - container_port: 80\n")
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="spec.containers[0].ports[0].container_port", line=10, words=("containerPort",))


@pytest.mark.parametrize("snippet, path, line, words", [
    ("    command: echo hi\n", "spec.containers[0].command", 9, ("expected a list", '"echo hi"')),
    ("    env:\n    - name: X\n      value: 1\n", "spec.containers[0].env[0].value", 11,
     ("expected a string", "integer 1", 'quote it: "1"')),
    ("    ports:\n    - containerPort: \"80\"\n", "spec.containers[0].ports[0].containerPort", 10,
     ("expected an integer", '"80"')),
    ("    stdin: maybe\n", "spec.containers[0].stdin", 9, ("expected true or false",)),
    ("    resources: [1]\n", "spec.containers[0].resources", 9, ("expected an object", "a list")),
    ("    ports:\n    - containerPort: 99999999999\n", "spec.containers[0].ports[0].containerPort", 10,
     ("out of range",)),
])
def test_wrong_types(tmp_path, snippet, path, line, words):
    p = write(tmp_path, GOOD + snippet)
    assert_names(only_error(manifest.load([p])), source=p, document=1, documents=1, path=path, line=line,
                 words=words)


def test_missing_name(tmp_path):
    path = write(tmp_path, GOOD.replace("  name: good\n", "  labels: {a: b}\n"))
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="metadata.name", line=3, words=("required",))


def test_missing_containers(tmp_path):
    path = write(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  restartPolicy: Never\n")
    error = next(e for e in manifest.load([path])[0].errors if e.path == "spec.containers")
    assert_names(error, source=path, document=1, documents=1, path="spec.containers", line=5,
                 words=("required", "container"))


def test_bad_quantity(tmp_path):
    path = write(tmp_path, GOOD + "    resources:\n      limits:\n        memory: 12Gigs\n")
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="spec.containers[0].resources.limits.memory", line=11, words=("12Gigs", "quantity"))


def test_empty_document_and_empty_file(tmp_path):
    path = write(tmp_path, GOOD + "--- {}\n")
    docs = manifest.load([path])
    assert docs[0].ok
    assert_names(only_error(docs, 1), source=path, document=2, documents=2, path="", line=9,
                 words=("empty document",))
    empty = write(tmp_path, "# nothing here\n", name="empty.yaml")
    [error] = manifest.load([empty])
    assert isinstance(error, manifest.ManifestError) and "no documents" in str(error)
    assert str(error).startswith(empty)


def test_not_a_mapping(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    error = only_error(manifest.load([path]))
    assert error.line == 1 and "expected an object" in str(error)


def test_duplicate_field(tmp_path):
    path = write(tmp_path, GOOD + "    image: other\n")
    assert_names(only_error(manifest.load([path])), source=path, document=1, documents=1,
                 path="spec.containers[0].image", line=9, words=("duplicate",))


def test_several_errors_in_one_document_are_all_listed(tmp_path):
    path = write(tmp_path, GOOD + "    comand: [sh]\n    resources: {limits: {cpu: lots}}\n")
    [doc] = manifest.load([path])
    assert {(e.path, e.line) for e in doc.errors} == {
        ("spec.containers[0].comand", 9), ("spec.containers[0].resources.limits.cpu", 10)}


def test_json_file_directory_and_stdin(tmp_path):
    (tmp_path / "b.json").write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},\n'
                                     ' "spec": {"containers": [{"name": "c", "image": "busybox"}]}}\n')
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a manifest")
    docs = manifest.load([str(tmp_path)])
    assert [d.obj.metadata.name for d in docs] == ["good", "j"]  # sorted by file name, .txt skipped
    [doc] = manifest.load(["-"], stdin=io.StringIO(GOOD))
    assert doc.ok and doc.source == "<stdin>"


def test_missing_file(tmp_path):
    [error] = manifest.load([str(tmp_path / "nope.yaml")])
    assert isinstance(error, manifest.ManifestError)
    assert str(error) == f"{tmp_path / 'nope.yaml'}: no such file or directory"


def test_server_side_errors_map_to_lines(tmp_path):
    path = write(tmp_path, GOOD + "    resources:\n      limits:\n        cpu: 1\n")
    [doc] = manifest.load([path])
    assert doc.line_of("spec.containers[0].resources.limits.cpu") == 11
    # A path that was not written maps to its nearest written ancestor.
    assert doc.line_of("spec.containers[0].resources.requests.memory") == 9
    assert str(doc.error("spec.containers[0].image", "image not allowed")) == \
        f"{path}:8: document 1 of 1: spec.containers[0].image: image not allowed"


def test_example_hello_manifest_is_valid():
    example = Path(__file__).resolve().parents[3] / "manifests" / "examples" / "hello.yaml"
    [doc] = manifest.load([str(example)])
    assert doc.ok, [str(e) for e in doc.errors]
    pod = doc.obj
    assert pod.spec.restart_policy == "Never"
    assert dict(pod.spec.containers[0].resources.limits) == {"memory": "64Mi", "cpu": "250m"}


def test_semantic_errors_from_validation_point_at_their_line(tmp_path):
    # requests above limits parse fine; skiff.api.validation rejects them.
    path = write(tmp_path, GOOD + "    resources:\n      limits: {cpu: 500m}\n      requests: {cpu: 2}\n")
    [doc] = manifest.load([path])
    assert not doc.ok and doc.obj is None
    assert [(e.path, e.line) for e in doc.errors] == [("spec.containers[0].resources.requests.cpu", 11)]


def test_list_documents_expand_to_their_items(tmp_path):
    # What `skiff get pods -o yaml` prints can be applied again.
    item = textwrap.indent(GOOD, "  ").replace("  apiVersion", "- apiVersion", 1)
    path = write(tmp_path, "apiVersion: v1\nkind: List\nitems:\n" + item
                 + item.replace("name: good", "name: other").replace("image: busybox", "imag: busybox"))
    docs = manifest.load([path])
    assert [d.ok for d in docs] == [True, False]
    assert docs[0].obj.metadata.name == "good" and docs[0].label == "pod/good"
    assert [(e.path, e.line, e.document) for e in docs[1].errors] == [
        ("items[1].spec.containers[0].imag", 19, 1), ("items[1].spec.containers[0].image", 18)[:2] + (1,)]
    assert docs[1].error("metadata.name", "taken").path == "items[1].metadata.name"
    assert docs[1].error("metadata.name", "taken").line == 15


def test_printed_list_round_trips(tmp_path):
    from skiff.api import printers

    [doc] = manifest.load([write(tmp_path, GOOD)])
    doc.obj.metadata.uid = "u-1"
    doc.obj.status.phase = "Pending"
    text = printers.dump_yaml(printers.to_list_dict([doc.obj]))
    [again] = manifest.load([write(tmp_path, text, name="list.yaml")])
    assert again.ok and again.obj == doc.obj


def test_anchors_and_merge_keys(tmp_path):
    path = write(tmp_path, GOOD.replace("  - name: c\n", "  - &base\n    name: c\n")
                 + "    resources: {limits: {memory: 64Mi}}\n  - <<: *base\n    name: d\n")
    [doc] = manifest.load([path])
    assert doc.ok, [str(e) for e in doc.errors]
    assert [(c.name, c.image, dict(c.resources.limits)) for c in doc.obj.spec.containers] == [
        ("c", "busybox", {"memory": "64Mi"}), ("d", "busybox", {"memory": "64Mi"})]
    bad = write(tmp_path, GOOD + "  - <<: {image: busybox}\n    name: d\n    name: e\n", name="bad.yaml")
    assert_names(only_error(manifest.load([bad])), source=bad, document=1, documents=1,
                 path="spec.containers[1].name", line=11, words=("duplicate",))


def test_windows_files_and_tabs(tmp_path):
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    [doc] = manifest.load([str(bom)])
    assert doc.ok, [str(e) for e in doc.errors]
    tabs = write(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: x\n", name="tabs.yaml")
    error = only_error(manifest.load([tabs]))
    assert error.line == 4 and "invalid YAML" in error.message and "'\\t'" in error.message
