#!/bin/bash
# Runs in each VM on every boot (skiff-vm-boot.service), before Skiff's units:
# reads the seed disk deploy/vm/cluster.sh made for this VM (/dev/vdb, label
# skiffseed), names the machine, gives eth0 its static address, installs the
# cluster's certificates, writes /etc/default/skiff and starts the units of
# deploy/systemd this VM's role runs. No DHCP, no default route: the VMs see
# only their bridge.
set -euo pipefail
seed=/run/skiff-seed
mkdir -p "$seed"
# The seed is the second virtio disk; eth0 comes with virtio_net, which udev loads.
for i in $(seq 600); do
  [[ -b /dev/vdb && -e /sys/class/net/eth0 ]] && break
  sleep 0.1
done
mountpoint -q "$seed" || mount -o ro /dev/vdb "$seed"
# shellcheck disable=SC1091
. "$seed/node.env"

echo "$NODE" > /etc/hostname
hostname "$NODE"
grep -q " $NODE\$" /etc/hosts || echo "$IP $NODE" >> /etc/hosts
ip link set lo up
ip link set eth0 up
ip addr replace "$IP/$PREFIX" dev eth0

net_args="--pod-network host-gw --cluster-cidr $CLUSTER_CIDR --service-cidr $SERVICE_CIDR"

if [[ $ROLE == node ]]; then
  umount "$seed"
  # deploy/README.md's join: the line `skiff token create --print-join-command` prints. The
  # control plane may still be starting (the host creates the token once its API answers):
  # each refused attempt leaves nothing, so try again until it is in.
  if [[ ! -e /var/lib/skiff/pki/node.crt ]]; then
    # A Python start is dear under software emulation: knock (bash's /dev/tcp) until the door opens.
    until timeout 5 bash -c "exec 3<>/dev/tcp/${JOIN_SERVER%:*}/${JOIN_SERVER##*:}" 2>/dev/null; do sleep 5; done
    until skiff join "$JOIN_SERVER" --token "$JOIN_TOKEN" --discovery-token-ca-cert-hash "$JOIN_CA_HASH" \
        --node-ip "$IP" --no-start --timeout 120; do
      echo "skiff-vm-boot: $NODE: join refused or unreachable, again in 5 s" > /dev/console
      sleep 5
    done
  fi
  # The lab's pod network: routes to the other nodes' pods over their one link.
  agent_args=$(. /etc/default/skiff; echo "$SKIFF_AGENT_ARGS")
  if [[ $agent_args != *--pod-network* ]]; then
    sed -i '/^SKIFF_AGENT_ARGS=/d' /etc/default/skiff
    echo "SKIFF_AGENT_ARGS=$agent_args $net_args" >> /etc/default/skiff
  fi
  echo "skiff-vm-boot: $NODE ($ROLE) at $IP joined, starting skiff-agent" > /dev/console
  systemctl start --no-block skiff-agent.service
  exit 0
fi

# The control-plane machine: its certificates come with the seed (made where the CA is).
# Kubernetes' 40 s without a heartbeat before a node is NotReady (Skiff's own default, 8 s,
# is for one machine: under software emulation a busy agent's heartbeats come later than
# that and healthy nodes flap), and 30 s before its pods are evicted: a powered-off VM's
# pods move after ~70 s.
LIFECYCLE_ARGS="--node-monitor-grace-period 40 --default-unreachable-toleration-seconds 30"
LIFECYCLE_ARGS+=" --default-not-ready-toleration-seconds 30"
pki=/etc/skiff/pki
install -d -m 0700 "$pki"
cp -r "$seed"/pki/. "$pki"/ && chmod -R go-rwx "$pki"   # files and etcd/ (etcd's own CA), 0600/0700
umount "$seed"
{
  echo "SKIFF_SERVER=$SERVER"
  echo "SKIFF_NODE_IP=$IP"
  echo "SKIFF_AGENT_ARGS=--client-ca-file $pki/ca.crt --tls-cert-file $pki/node-$NODE.crt" \
    "--tls-private-key-file $pki/node-$NODE.key $net_args"
  echo "SKIFF_LISTEN=$IP:6443"
  echo "SKIFF_CONTROLPLANE_ARGS=--client-ca-file $pki/ca.crt --tls-cert-file $pki/apiserver.crt" \
    "--tls-private-key-file $pki/apiserver.key --token-auth-file $pki/tokens.csv" \
    "--kubelet-client-certificate $pki/controlplane.crt --kubelet-client-key $pki/controlplane.key" \
    "--etcd-cafile $pki/etcd/ca.crt --etcd-certfile $pki/apiserver-etcd-client.crt" \
    "--etcd-keyfile $pki/apiserver-etcd-client.key" \
    "--encryption-key-file $pki/encryption.key --cluster-cidr $CLUSTER_CIDR" \
    "--service-cluster-ip-range $SERVICE_CIDR --rest-listen $IP:6444 $LIFECYCLE_ARGS"
} > /etc/default/skiff
units=(skiff-etcd.service skiff-controlplane.service skiff-agent.service)
echo "skiff-vm-boot: $NODE ($ROLE) at $IP, starting ${units[*]}" > /dev/console
systemctl start --no-block "${units[@]}"
