#!/usr/bin/env bash
# A Skiff cluster on Debian 12 VMs under qemu, on this machine, as root.
#
#   deploy/vm/cluster.sh up [--nodes N]     build the image (first time), boot N VMs, wait until
#                                           every node is Ready
#   deploy/vm/cluster.sh down               stop the VMs, remove their disks, taps, bridge and
#                                           network namespace (also after a killed `up`)
#   deploy/vm/cluster.sh skiff ARGS...      run `skiff ARGS` against the cluster (from the namespace)
#   deploy/vm/cluster.sh exec CMD...        run CMD in the VMs' network namespace
#   deploy/vm/cluster.sh poweroff NODE      pull NODE's plug (qemu quits; its disk stays)
#   deploy/vm/cluster.sh status             the VMs and their qemu processes
#   deploy/vm/cluster.sh image              only build (or find) the disk image
#
# The image: `debootstrap` of this machine's own apt sources (the only outside source), with
# systemd and Debian's kernel, then Skiff installed in it by deploy/install.sh run in a chroot
# on a copy of this working tree (Python packages from this tree's .venv: no PyPI). Cached in
# $SKIFF_VM_CACHE (/var/cache/skiff-vm): the Debian tree once, the disk per source tree.
#
# The VMs: qemu-system-x86_64 (KVM when usable, else TCG: software emulation), the kernel and
# initrd booted directly, a qcow2 overlay of the image each, and a seed disk (deploy/vm/seed.py:
# name, address, certificates) that skiff-vm-boot.service reads. Each VM's virtio-net is a tap on
# a bridge inside the network namespace $SKIFF_VM_NETNS (skiff-vmlab), static addresses on
# $SKIFF_VM_SUBNET.0/24 (10.77.0): node1 .11 runs etcd, the control plane and an agent
# (deploy/systemd), node2.. .12.. run an agent. No user-mode network, nothing links the
# namespace to the host's network: the host reaches the VMs with `ip netns exec`.
# Serial consoles: $STATE/nodeN.console.log. State (PIDs, disks, PKI): $SKIFF_VM_STATE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
NETNS="${SKIFF_VM_NETNS:-skiff-vmlab}"
CACHE="${SKIFF_VM_CACHE:-/var/cache/skiff-vm}"
STATE="${SKIFF_VM_STATE:-/var/lib/skiff-vm/$NETNS}"
SUBNET="${SKIFF_VM_SUBNET:-10.77.0}"
MEMORY="${SKIFF_VM_MEMORY:-1024}"               # MiB per node VM
CP_MEMORY="${SKIFF_VM_CP_MEMORY:-1536}"         # MiB for node1 (etcd + control plane + agent)
CPUS="${SKIFF_VM_CPUS:-1}"
READY_TIMEOUT="${SKIFF_VM_READY_TIMEOUT:-900}"  # seconds for every node to be Ready
SUITE=bookworm
PYTHON="$repo/.venv/bin/python"
SKIFF="$repo/.venv/bin/skiff"
T0=$SECONDS
# Drivers for devices the VMs have but never use (qemu's pc machine always has a floppy and
# an IDE controller): each costs seconds of probing under software emulation.
KERNEL_ARGS="modprobe.blacklist=floppy,pcspkr,ata_piix,ata_generic,psmouse,i2c_piix4,serio_raw,joydev"
KERNEL_ARGS+=" systemd.show_status=1 systemd.journald.forward_to_console=1"   # services' logs too

log() { printf '[%4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
die() { echo "deploy/vm/cluster.sh: $*" >&2; exit 1; }

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

need_root() { [[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, taps, chroot)"; }

# ------------------------------------------------------------------ the image

host_packages() {
  local missing=() p
  for p in qemu-system-x86 qemu-utils debootstrap e2fsprogs iproute2 cpio; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "apt-get install ${missing[*]} (on this machine)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

chroot_mounts=()
mount_chroot() {
  local root=$1 d
  for d in proc sys dev dev/pts; do
    mkdir -p "$root/$d"
    case $d in
      proc) mount -t proc proc "$root/proc" ;;
      sys) mount -t sysfs sys "$root/sys" ;;
      dev) mount --bind /dev "$root/dev" ;;
      dev/pts) mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 ;;
    esac
    chroot_mounts=("$root/$d" "${chroot_mounts[@]}")
  done
}
umount_chroot() {
  local m
  for m in "${chroot_mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
  chroot_mounts=()
}

in_chroot() { chroot "$CACHE/rootfs" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# The Debian tree: debootstrap (minbase) + systemd + the kernel. Once per cache.
build_rootfs() {
  local root="$CACHE/rootfs" mirror
  [[ -e "$CACHE/rootfs.done" ]] && return 0
  rm -rf "$root" && mkdir -p "$root"
  mirror=$(cd "$repo" && "$PYTHON" -c "from agent.images.bootstrap import apt_mirror; print(apt_mirror(suite='$SUITE'))")
  log "debootstrap $SUITE from $mirror into $root (first time only; a few minutes)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,kmod,iproute2,procps,e2fsprogs,ca-certificates \
    "$SUITE" "$root" "$mirror" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  trap 'umount_chroot' EXIT
  mount_chroot "$root"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
  log "apt-get install linux-image-amd64 (in the image)"
  in_chroot apt-get install -y -qq --no-install-recommends linux-image-amd64 > "$CACHE/kernel.log" 2>&1 \
    || { tail -20 "$CACHE/kernel.log" >&2; die "installing the kernel failed (log: $CACHE/kernel.log)"; }
  rm -f "$root/usr/sbin/policy-rc.d"
  umount_chroot
  trap - EXIT
  # Every VM gets its own machine id at first boot; nothing asks on the console.
  : > "$root/etc/machine-id"
  ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
  echo "LABEL=skiffroot / ext4 rw,noatime 0 1" > "$root/etc/fstab"
  chroot "$root" passwd -d root >/dev/null      # root on the serial console, for debugging
  touch "$CACHE/rootfs.done"
}

# The files of this working tree the image carries (tracked and untracked, not ignored): what
# deploy/install.sh installs and runs, so a change elsewhere (tests, docs) reuses the disk.
tree_files() { git -C "$repo" ls-files -z -co --exclude-standard --deduplicate -- \
    skiff agent controlplane proto deploy manifests pyproject.toml README.md | \
  while IFS= read -r -d '' f; do [[ -f "$repo/$f" || -L "$repo/$f" ]] && printf '%s\0' "$f"; done; }

tree_key() { (cd "$repo" && tree_files | xargs -0 sha256sum | sha256sum | cut -c1-16); }

# Skiff into the tree as deploy/README.md says (/opt/skiff, deploy/install.sh, the links, the
# units), then the ext4 disk image. Once per source tree.
build_disk() {
  local root="$CACHE/rootfs" key=$1 disk="$CACHE/disk-$1.raw" site
  [[ -e "$disk" ]] && return 0
  log "installing this tree into the image (/opt/skiff, deploy/install.sh in a chroot)"
  find "$root/opt/skiff" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} + 2>/dev/null || true
  mkdir -p "$root/opt/skiff"
  (cd "$repo" && tree_files | tar --null -T - -cf -) | tar -xf - -C "$root/opt/skiff"
  trap 'umount_chroot' EXIT
  mount_chroot "$root"
  if [[ ! -x "$root/opt/skiff/.venv/bin/python" ]]; then
    in_chroot apt-get install -y -qq --no-install-recommends python3-venv > "$CACHE/venv.log" 2>&1 \
      || { tail -20 "$CACHE/venv.log" >&2; die "apt-get install python3-venv failed"; }
    in_chroot python3 -m venv /opt/skiff/.venv
    # Skiff's Python dependencies from this tree's venv (same CPython 3.11 ABI): the VMs and
    # the image build reach no package index; deploy/install.sh's pip then finds them installed.
    site="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    tar -C "$site" --exclude='__editable__*' --exclude='skiff-*.dist-info' --exclude='*.pth' \
      --exclude='__pycache__' --exclude='grpc_tools' --exclude='kubernetes' --exclude='_pytest' \
      --exclude='pytest' -cf - . | tar -xf - -C "$root/opt/skiff/.venv/lib/python3.11/site-packages"
  fi
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
  in_chroot env PIP_NO_INDEX=1 PIP_NO_BUILD_ISOLATION=0 bash /opt/skiff/deploy/install.sh > "$CACHE/install.log" 2>&1 \
    || { rm -f "$root/usr/sbin/policy-rc.d"; tail -20 "$CACHE/install.log" >&2; die "deploy/install.sh in the image failed (log: $CACHE/install.log)"; }
  rm -f "$root/usr/sbin/policy-rc.d"
  # Bytecode for every module the VMs import, made here at native speed: under software
  # emulation compiling grpc, aiohttp, cryptography... at a service's first start costs minutes.
  in_chroot /opt/skiff/.venv/bin/python -m compileall -q -j 0 /opt/skiff/.venv/lib >/dev/null 2>&1 || true
  # Only the units of deploy/systemd run Skiff's etcd (images made before install.sh disabled it).
  in_chroot systemctl disable -q etcd.service 2>/dev/null || true
  # A VM of a test lab: no daily apt, backups or scrubs competing with Skiff for an emulated CPU.
  in_chroot systemctl mask -q apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer man-db.timer systemd-tmpfiles-clean.timer e2scrub_reap.service getty@tty1.service getty-static.service \
    2>/dev/null || true
  # deploy/README.md, "Every machine" and the units (the VM's boot step starts them by role).
  in_chroot ln -sf /opt/skiff/.venv/bin/skiff-controlplane /opt/skiff/.venv/bin/skiff-agent /usr/local/bin/
  cp "$repo"/deploy/systemd/*.service "$root/etc/systemd/system/"
  mkdir -p "$root/etc/systemd/system/skiff-etcd.service.d"
  cp "$repo/deploy/systemd/skiff-etcd.service.d/tls.conf" "$root/etc/systemd/system/skiff-etcd.service.d/"
  install -m 0755 "$here/skiff-vm-boot.sh" "$root/usr/local/sbin/skiff-vm-boot"
  cp "$here/skiff-vm-boot.service" "$root/etc/systemd/system/"
  in_chroot systemctl enable skiff-vm-boot.service >/dev/null 2>&1
  umount_chroot
  trap - EXIT
  cp "$root"/boot/vmlinuz-* "$CACHE/vmlinuz"
  build_initrd
  log "making the disk image ($(du -sh "$root" | cut -f1) of files)"
  rm -f "$CACHE"/disk-*.raw.tmp
  mkfs.ext4 -q -F -L skiffroot -E root_owner=0:0 -d "$root" "$disk.tmp" 6G >&2
  mv "$disk.tmp" "$disk"
}

# A small initrd of our own: busybox, the virtio and ext4 modules (with what they need, as
# modprobe lists them) and an /init that mounts /dev/vda and hands over to systemd. Debian's
# (initramfs-tools, every storage driver, udev) takes ~25 s to unpack and ~30 s to probe
# under software emulation; this one about a second.
build_initrd() {
  local root="$CACHE/rootfs" kver work m ko
  kver=$(ls "$root/lib/modules" | head -1)
  work=$(mktemp -d)
  mkdir -p "$work"/{bin,dev,proc,sys,newroot,modules}
  cp "$root/bin/busybox" "$work/bin/busybox"
  for m in sh mount umount insmod sleep switch_root; do ln -s busybox "$work/bin/$m"; done
  for m in virtio_pci virtio_blk crc32c_generic ext4; do
    chroot "$root" modprobe -S "$kver" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' > "$work/order"
  : > "$work/modules/order"
  while read -r ko; do
    cp "$root$ko" "$work/modules/"
    basename "$ko" >> "$work/modules/order"
  done < "$work/order"
  rm "$work/order"
  cat > "$work/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do insmod "/modules/$ko" 2>/dev/null; done < /modules/order
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
mount -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; sleep 5; exit 1; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
  chmod +x "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/initrd.img"
  rm -rf "$work"
}

image() {
  need_root
  host_packages
  mkdir -p "$CACHE"
  exec 9> "$CACHE/.lock"
  flock 9
  build_rootfs
  local key; key=$(tree_key)
  build_disk "$key"
  # Older disks no VM of this machine uses any more.
  local d
  for d in "$CACHE"/disk-*.raw; do
    [[ $d == "$CACHE/disk-$key.raw" ]] && continue
    grep -qsF "$d" /var/lib/skiff-vm/*/base 2>/dev/null || rm -f "$d"
  done
  flock -u 9
  echo "$CACHE/disk-$key.raw"
}

# ------------------------------------------------------------------ the VMs

# KVM when it runs guest code here with the host's CPU model (SeaBIOS says "Running on KVM" on
# its debug port within a few seconds), else TCG. SKIFF_VM_ACCEL=kvm|tcg decides instead.
accel() {
  local probe
  case ${SKIFF_VM_ACCEL:-} in
    kvm) echo kvm; return ;;
    tcg) echo tcg,thread=multi; return ;;
  esac
  if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    probe=$(mktemp)
    timeout 5 qemu-system-x86_64 -accel kvm -cpu "${SKIFF_VM_CPU:-host}" -machine pc -display none -nodefaults -no-user-config \
      -chardev "file,id=d,path=$probe" -device isa-debugcon,iobase=0x402,chardev=d >/dev/null 2>&1 || true
    if grep -q "Running on KVM" "$probe"; then rm -f "$probe"; echo kvm; return; fi
    rm -f "$probe"
  fi
  echo tcg,thread=multi
}

start_vm() {
  local i=$1 disk=$2 accel=$3 node="node$1" mem=$MEMORY
  [[ $i -eq 1 ]] && mem=$CP_MEMORY
  qemu-img create -q -f qcow2 -F raw -b "$disk" "$STATE/$node.qcow2"
  mkfs.ext4 -q -F -L skiffseed -d "$STATE/seed/$node" "$STATE/$node.seed.img" 8M >&2
  ip -n "$NETNS" tuntap add dev "tap$i" mode tap
  ip -n "$NETNS" link set "tap$i" master br0 up
  local cpu=${SKIFF_VM_CPU:-max}; [[ $accel == kvm ]] && cpu=${SKIFF_VM_CPU:-host}
  ip netns exec "$NETNS" qemu-system-x86_64 -name "skiff-vm-$NETNS-$node" -machine pc -accel "$accel" \
    -cpu "$cpu" -smp "$CPUS" -m "$mem" -nodefaults -no-user-config -display none \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 $KERNEL_ARGS" \
    -drive "file=$STATE/$node.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -drive "file=$STATE/$node.seed.img,if=virtio,format=raw,readonly=on" \
    -netdev "tap,id=net0,ifname=tap$i,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=net0,mac=52:54:00:77:00:$(printf %02x "$i")" \
    -serial "file:$STATE/$node.console.log" -monitor "unix:$STATE/$node.monitor,server,nowait" \
    -no-reboot -daemonize -pidfile "$STATE/$node.pid"
}

skiff_cmd() { ip netns exec "$NETNS" env SKIFF_CONFIG="$STATE/config" "$SKIFF" "$@"; }

up() {
  local nodes=3
  while [[ $# -gt 0 ]]; do
    case $1 in
      --nodes) nodes=$2; shift 2 ;;
      --nodes=*) nodes=${1#*=}; shift ;;
      *) usage ;;
    esac
  done
  [[ $nodes =~ ^[1-9][0-9]?$ && $nodes -le 50 ]] || die "--nodes: $nodes is not a number from 1 to 50"
  need_root
  if [[ -e "$STATE" ]] || ip netns list | grep -qw "^$NETNS"; then
    die "a cluster is already up in $STATE / netns $NETNS ('$0 down' first)"
  fi
  local disk; disk=$(image)
  log "image: $disk"
  mkdir -p "$STATE"
  echo "$disk" > "$STATE/base"
  echo "$nodes" > "$STATE/nodes"
  # From here a failure leaves state that `down` removes.
  trap 'echo "deploy/vm/cluster.sh: up failed; $0 down removes what it made (consoles: $STATE/*.console.log)" >&2' ERR
  "$PYTHON" "$here/seed.py" "$STATE" --nodes "$nodes" --subnet "$SUBNET"
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link add br0 type bridge
  ip -n "$NETNS" addr add "$SUBNET.1/24" dev br0
  ip -n "$NETNS" link set br0 up
  local accel; accel=$(accel)
  log "booting $nodes VMs (accel $accel; consoles in $STATE/nodeN.console.log)"
  local i
  for ((i = 1; i <= nodes; i++)); do
    start_vm "$i" "$disk" "$accel"
    log "node$i: qemu pid $(cat "$STATE/node$i.pid"), $SUBNET.$((10 + i))"
  done
  wait_ready "$nodes"
  trap - ERR
  log "up: $nodes nodes Ready. Use: $0 skiff get nodes -o wide"
}

wait_ready() {
  local nodes=$1 deadline=$((SECONDS + READY_TIMEOUT)) ready=0 last="" i
  declare -A seen=()
  while ((SECONDS < deadline)); do
    for ((i = 1; i <= nodes; i++)); do
      # Boot milestones from the serial consoles, once each.
      if [[ -z ${seen[boot$i]:-} ]] && grep -qs "skiff-vm-boot: node$i .* starting" "$STATE/node$i.console.log"; then
        seen[boot$i]=1; log "node$i: $(grep -a -o "skiff-vm-boot: node$i .* starting.*" "$STATE/node$i.console.log" | head -1 | tr -d '\r')"
      fi
      vm_pid "node$i" >/dev/null || die "node$i: qemu exited (console: $STATE/node$i.console.log)"
    done
    if [[ -n ${seen[boot1]:-} ]]; then
      if [[ -z ${seen[token]:-} ]] && skiff_cmd token create "$(cat "$STATE/join-token")" --ttl 2h \
          --description "deploy/vm: the VMs' first boot" >/dev/null 2>&1; then
        seen[token]=1; log "node1: the API answers; the join token is in (nodes join with skiff join)"
      fi
      ready=$(skiff_cmd get nodes 2>/dev/null | awk 'NR > 1 && $2 == "Ready"' | wc -l || true)
      if [[ "$ready" != "$last" ]]; then log "$ready/$nodes nodes Ready"; last=$ready; fi
      ((ready == nodes)) && return 0
    fi
    sleep 3
  done
  die "not every node Ready after ${READY_TIMEOUT}s ($ready/$nodes; consoles: $STATE/*.console.log)"
}

# The qemu of NODE if its pid file names a live qemu of this lab (never another process).
vm_pid() {
  local f="$STATE/$1.pid" pid
  [[ -r $f ]] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-name skiff-vm-$NETNS-$1 " || return 1
  echo "$pid"
}

stop_vm() {
  local node=$1 pid n
  pid=$(vm_pid "$node") || return 0
  kill "$pid" 2>/dev/null || true
  for ((n = 0; n < 50; n++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

poweroff() {
  [[ $# -eq 1 ]] || usage
  need_root
  vm_pid "$1" >/dev/null || die "$1: no VM of this cluster runs under that name"
  stop_vm "$1"
  log "$1: powered off"
}

down() {
  need_root
  local f node
  for f in "$STATE"/node*.pid; do
    [[ -e $f ]] || continue
    node=$(basename "$f" .pid)
    stop_vm "$node"
  done
  if ip netns list | grep -qw "^$NETNS"; then
    ip netns del "$NETNS"
  fi
  rm -rf "$STATE"
  rmdir /var/lib/skiff-vm 2>/dev/null || true
  log "down: no VM, tap, bridge or namespace of $NETNS left"
}

status() {
  [[ -e "$STATE/nodes" ]] || { echo "no cluster in $STATE"; return 0; }
  local n i pid; n=$(cat "$STATE/nodes")
  for ((i = 1; i <= n; i++)); do
    pid=$(vm_pid "node$i" || echo "-")
    printf 'node%-3s %-14s qemu %s\n' "$i" "$SUBNET.$((10 + i))" "$pid"
  done
}

cmd=${1:-}; [[ $# -gt 0 ]] && shift
case $cmd in
  up) up "$@" ;;
  down) down ;;
  image) image ;;
  skiff) skiff_cmd "$@" ;;
  exec) need_root; ip netns exec "$NETNS" "$@" ;;
  poweroff) poweroff "$@" ;;
  status) status ;;
  *) usage ;;
esac
