"""Reference normalization, as Docker does it."""
from __future__ import annotations

import pytest

from agent.images.errors import InvalidReference
from agent.images.reference import normalize, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,normalized,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("me/app:v1", "docker.io/me/app:v1", "me/app:v1"),
    ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"),
    ("quay.io/org/img:1.0", "quay.io/org/img:1.0", "quay.io/org/img:1.0"),
    ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
    (f"app@{D}", f"docker.io/library/app@{D}", f"app@{D}"),
    (f"app:1@{D}", f"docker.io/library/app:1@{D}", f"app:1@{D}"),
    ("debian-python:bookworm", "docker.io/library/debian-python:bookworm", "debian-python:bookworm"),
])
def test_normalize(text, normalized, familiar):
    ref = parse_reference(text)
    assert str(ref) == normalized == normalize(normalized)
    assert ref.familiar() == familiar


@pytest.mark.parametrize("text", ["", "Busybox", "a:b:c", "app@sha256:abc", "a//b", "-x",
                                  "x:" + "t" * 200, " busybox"])
def test_invalid(text):
    with pytest.raises(InvalidReference) as err:
        parse_reference(text)
    assert "invalid reference format" in str(err.value)
