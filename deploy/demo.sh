#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine, as root: install Skiff, start the
# all-in-one cluster (etcd + control plane + one node agent), run the examples:
#   1. manifests/examples/hello.yaml — a busybox pod that prints its PID, hostname
#      and cgroup memory limit, then exits (Succeeded);
#   2. manifests/examples/web-server — `skiff build` of a Python web server on an
#      offline Debian base, published on 127.0.0.1:5000 like `docker run -p 5000:5000`.
# Safe to run again: every step is idempotent. `skiff down --purge` removes it all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "install (apt + pip)"
bash deploy/install.sh

step "skiff up --detach"
skiff up --detach

step "skiff apply -f manifests/examples/hello.yaml"
skiff apply -f manifests/examples/hello.yaml
skiff wait pod hello --for=jsonpath='{.status.phase}'=Succeeded --timeout 120s
skiff get pods hello
step "skiff logs hello"
skiff logs hello

step "skiff image bootstrap debian --include python3 (cached after the first time)"
skiff image bootstrap debian --include python3
step "skiff build -t my-web-server manifests/examples/web-server"
skiff build -t my-web-server manifests/examples/web-server
step "skiff apply -f manifests/examples/web-server/pod.yaml"
skiff apply -f manifests/examples/web-server/pod.yaml
skiff wait pod web-server --for=condition=Ready --timeout 120s
skiff get pods -o wide
step "curl http://127.0.0.1:5000/"
for _ in $(seq 1 50); do
  curl -fsS --max-time 2 http://127.0.0.1:5000/ && break
  sleep 0.2
done
