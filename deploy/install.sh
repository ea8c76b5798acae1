#!/usr/bin/env bash
# Install everything Skiff needs on a Debian 12 machine, as root.
#
#   deploy/install.sh            # runtime dependencies + Skiff in <repo>/.venv, `skiff` on PATH
#   deploy/install.sh --test     # ... plus what the test suite needs
#   deploy/install.sh --monitoring   # ... plus Debian's prometheus, for `skiff up --monitoring`
#
# Idempotent: a second run only checks. Services that Debian's packages would
# start on their own (etcd, prometheus) are kept from starting: Skiff starts
# its own etcd with its own data dir (`skiff up`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
with_tests=0
with_monitoring=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1 ;;
    --monitoring) with_monitoring=1 ;;
    *) echo "usage: deploy/install.sh [--test] [--monitoring]" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "deploy/install.sh: run as root (Skiff creates namespaces, cgroups and mounts)" >&2
  exit 1
fi

packages=(python3 python3-venv python3-pip etcd-server busybox-static nftables iproute2 debootstrap curl)
# prometheus: `skiff up --monitoring` runs it (deploy/monitoring); the tests scrape with it.
[[ $with_tests -eq 1 || $with_monitoring -eq 1 ]] && packages+=(prometheus)
[[ $with_tests -eq 1 ]] && packages+=(docker-registry)
# chromium: tests/e2e/test_console_charts.py renders the console pages' charts headless.
[[ $with_tests -eq 1 ]] && packages+=(chromium)
# qemu: tests/deploy/test_vm_cluster.py boots the VMs of deploy/vm (software emulation without KVM).
[[ $with_tests -eq 1 ]] && packages+=(qemu-system-x86 qemu-utils)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "==> apt-get install ${missing[*]}"
  # Keep Debian's maintainer scripts from starting etcd/prometheus services
  # (policy-rc.d is the Debian-sanctioned switch); Skiff runs its own etcd.
  had_policy=0; [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  if [[ $had_policy -eq 0 ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [[ $had_policy -eq 0 ]] && rm -f /usr/sbin/policy-rc.d
  # ... nor at the next boot: Debian enables the units it installs (etcd's would take 2379
  # before skiff-etcd's on a machine of deploy/README.md).
  for unit in etcd prometheus; do
    if [[ " ${missing[*]} " == *" ${unit/etcd/etcd-server} "* ]] && command -v systemctl >/dev/null; then
      systemctl disable -q "$unit.service" 2>/dev/null || true
    fi
  done
fi

venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> python3 -m venv $venv"
  python3 -m venv "$venv"
fi
extra=""; [[ $with_tests -eq 1 ]] && extra="[test]"
echo "==> pip install -e .$extra"
# editable_mode=compat: a plain path in a .pth file. The default (an import
# finder hook) costs every interpreter start ~25 ms — every `skiff` command.
"$venv/bin/pip" install -q --disable-pip-version-check -e "$here$extra" --config-settings editable_mode=compat
# Bytecode now, once: an editable install compiles nothing, and where
# PYTHONDONTWRITEBYTECODE is set every `skiff` run would compile its modules again.
"$venv/bin/python" -m compileall -q "$here/skiff" "$here/agent" "$here/controlplane" "$here/proto" >/dev/null

ln -sf "$venv/bin/skiff" /usr/local/bin/skiff
echo "==> skiff installed: $(command -v skiff)"
