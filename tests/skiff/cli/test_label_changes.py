"""`skiff label|annotate` argument parsing: an annotation's value is free text, as kubectl takes it."""
import pytest

from skiff.cli._common import CliError
from skiff.cli.label import parse_changes


def test_an_annotation_value_may_hold_an_equals_sign_a_label_value_not():
    cause = "kubernetes.io/change-cause=skiff set image deploy/web web=my-web-server:v2"
    assert parse_changes(["deploy/web", cause], "annotation") == (
        ["deploy/web"], {"kubernetes.io/change-cause": "skiff set image deploy/web web=my-web-server:v2"}, [])
    with pytest.raises(CliError, match="invalid label spec"):
        parse_changes(["pod", "a", "tier=a=b"], "label")
