"""Regenerate the Python code for proto/skiff/v1/*.proto.

    python -m proto.generate          # write the generated files
    python -m proto.generate --check  # exit 1 if they are stale

The generated modules live beside their sources and import each other as
`proto.skiff.v1.*`, because protoc runs from the repository root.
"""
from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "proto" / "skiff" / "v1").glob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> None:
    from grpc_tools import protoc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc", f"-I{ROOT}", f"-I{include}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
        *[str(s.relative_to(ROOT)) for s in SOURCES],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_names() -> list[str]:
    return [f"{s.stem}{suffix}" for s in SOURCES for suffix in SUFFIXES]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    opts = parser.parse_args()
    target = ROOT / "proto" / "skiff" / "v1"
    if not opts.check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "proto" / "skiff" / "v1"
        stale = [n for n in generated_names()
                 if not (target / n).exists() or not filecmp.cmp(fresh / n, target / n, shallow=False)]
    for name in stale:
        print(f"stale: proto/skiff/v1/{name} (run: python -m proto.generate)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
