"""Build the seed's web-server Dockerfile with Skiff and with buildah; print times and ratios.

    python bench/build.py [--data-dir /var/lib/skiff] [--runs 3]

Both start from the same base: Skiff's `debian-python:bookworm` (made by
`skiff image bootstrap debian --include python3` if missing) is saved as an
OCI archive and pulled into a private buildah store (`oci-archive:`). Each
builder gets a fresh private store for the cold build, then:
  cold        first build, empty layer cache (base already present)
  cached      unchanged rebuild
  changed     rebuild after app.py changed (a comment appended: both builders
              key COPY on content, so a bare `touch` would be a cached rebuild)
Skiff is timed through its CLI (`python -m skiff.cli.main build`, what a user
runs, interpreter start included) and in-process (agent.images.builder.build).
buildah is Debian's (`apt-get install buildah`, for the benchmark only), run
with `--layers --storage-driver overlay --isolation chroot`. Medians of --runs.
"""
from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.images.archive import load_archive, save_archive  # noqa: E402
from agent.images.bootstrap import bootstrap_debian  # noqa: E402
from agent.images.builder import BuildOptions, build  # noqa: E402
from agent.images.store import ImageStore  # noqa: E402

BASE = "debian-python:bookworm"
EXAMPLE = ROOT / "manifests/examples/web-server"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(cmd: list[str], **kw) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def change(ctx: Path, n: int) -> None:
    with open(ctx / "app.py", "a") as f:
        f.write(f"# change {n}\n")


def bench_skiff_cli(*, work: Path, archive: Path) -> dict[str, float]:
    data = work / "skiff-cli"
    load_archive(store=ImageStore(root=data / "images"), path=archive)
    ctx = work / "ctx-skiff-cli"
    shutil.copytree(EXAMPLE, ctx)
    cmd = [sys.executable, "-m", "skiff.cli.main", "build", "-q", "-t", "web-bench",
           "--data-dir", str(data), str(ctx)]
    out = {"cold": timed(lambda: run(cmd, cwd=ROOT))}
    out["cached"] = timed(lambda: run(cmd, cwd=ROOT))
    change(ctx, 1)
    out["changed"] = timed(lambda: run(cmd, cwd=ROOT))
    return out


def bench_skiff_api(*, work: Path, archive: Path) -> dict[str, float]:
    store = ImageStore(root=work / "skiff-api" / "images")
    load_archive(store=store, path=archive)
    ctx = work / "ctx-skiff-api"
    shutil.copytree(EXAMPLE, ctx)
    opts = BuildOptions(context=ctx, tags=("web-bench",))
    go = lambda: build(store=store, options=opts, out=io.StringIO())  # noqa: E731
    out = {"cold": timed(go), "cached": timed(go)}
    change(ctx, 1)
    out["changed"] = timed(go)
    return out


def bench_buildah(*, work: Path, archive: Path) -> dict[str, float]:
    root, runroot = work / "buildah-root", work / "buildah-runroot"
    common = ["buildah", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay"]
    run([*common, "pull", "--quiet", f"oci-archive:{archive}"])
    image_id = subprocess.run([*common, "images", "-q"], capture_output=True, text=True).stdout.split()[0]
    run([*common, "tag", image_id, BASE])
    ctx = work / "ctx-buildah"
    shutil.copytree(EXAMPLE, ctx)
    cmd = [*common, "bud", "--quiet", "--layers", "--isolation", "chroot", "--pull-never",
           "-t", "web-bench", str(ctx)]
    out = {"cold": timed(lambda: run(cmd))}
    out["cached"] = timed(lambda: run(cmd))
    change(ctx, 1)
    out["changed"] = timed(lambda: run(cmd))
    # buildah's overlay store leaves mounts while containers exist; unmount all of ours.
    subprocess.run([*common, "rm", "--all"], capture_output=True)
    subprocess.run([*common, "rmi", "--all", "--force"], capture_output=True)
    subprocess.run(["umount", "-R", str(root / "overlay")], capture_output=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/skiff"),
                        help="where the debian-python base is (or is bootstrapped)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("buildah") is None:
        print("buildah not found: apt-get install buildah (for the benchmark only)", file=sys.stderr)
        return 1
    # buildah (as root) writes a blob-info cache to /var/lib/containers/cache;
    # remove it afterwards if this run is what created it.
    containers_dir = Path("/var/lib/containers")
    made_containers_dir = not containers_dir.exists()
    # As installed (deploy/install.sh compiles the tree): the CLI's time is
    # then its own, not the compiler's, even with PYTHONDONTWRITEBYTECODE set.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in
                    ("skiff", "agent", "controlplane", "proto"))], check=True, stdout=subprocess.DEVNULL)
    base_store = ImageStore(root=args.data_dir / "images")
    bootstrap_debian(store=base_store, include=("python3",), log=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {"skiff (CLI)": [], "skiff (in-process)": [],
                                                   "buildah": []}
    for i in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="skiff-bench-build-"))
        try:
            archive = work / "base.tar"
            save_archive(store=base_store, refs=(BASE,), path=archive)
            results["buildah"].append(bench_buildah(work=work, archive=archive))
            results["skiff (CLI)"].append(bench_skiff_cli(work=work, archive=archive))
            results["skiff (in-process)"].append(bench_skiff_api(work=work, archive=archive))
        finally:
            subprocess.run(["umount", "-R", str(work / "buildah-root" / "overlay")], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    if made_containers_dir:
        shutil.rmtree(containers_dir, ignore_errors=True)
    med = {name: {k: statistics.median(r[k] for r in runs) for k in ("cold", "cached", "changed")}
           for name, runs in results.items()}
    print(f"{'builder':<20}{'cold':>10}{'cached':>10}{'changed':>10}")
    for name, m in med.items():
        print(f"{name:<20}{m['cold']:>9.3f}s{m['cached']:>9.3f}s{m['changed']:>9.3f}s")
    b = med["buildah"]
    for name in ("skiff (CLI)", "skiff (in-process)"):
        m = med[name]
        print(f"{name} / buildah: cold {m['cold'] / b['cold']:.2f}x, cached {m['cached'] / b['cached']:.2f}x, "
              f"changed {m['changed'] / b['changed']:.2f}x")
    print("goals: cold <= 1.0x, cached <= 0.5x and < 0.5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
