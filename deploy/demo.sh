#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine, as root: install Skiff, start a
# cluster of two nodes on this machine (each node agent in a network namespace of
# its own, acting as a separate host; Prometheus beside it), then:
#   1. manifests/examples/hello.yaml — a busybox pod that prints its PID, hostname
#      and cgroup memory limit, then exits (Succeeded);
#   2. manifests/examples/web-server — `skiff build` of a Python web server on an
#      offline Debian base, run as a Deployment of one pod per node, each published
#      on its node's port 5000, and behind a NodePort Service (port 30500 on every
#      node, any pod answering); then a rolling update to v2, one node at a time.
# Every step says what to look at. Safe to run again: every step is idempotent
# (a second run rolls v1 out again, then v2). `skiff down --purge` removes it all.
#
# SKIFF_DEMO_NODES=3 for three nodes (the Deployment follows: one pod per node).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NODES=${SKIFF_DEMO_NODES:-2}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
look() { printf '\033[36m    look at: %s\033[0m\n' "$*"; }
# Loopback and the nodes' private link only: never through a proxy.
get() { curl -fsS --noproxy '*' --max-time 2 "$@"; }

step "install (apt + pip; Debian's prometheus for the dashboards)"
bash deploy/install.sh --monitoring

step "skiff up --detach --nodes $NODES --monitoring"
look "one line per component: etcd, the control plane, an agent per node (each in its own network namespace), prometheus"
look "secure by default: a cluster CA in /var/lib/skiff/pki (its fingerprint printed), every part TLS with certificates"
skiff up --detach --nodes "$NODES" --monitoring

step "skiff get nodes -o wide; skiff status"
look "$NODES nodes Ready, each with an INTERNAL-IP of its own on the private link 10.213.0.0/24"
skiff get nodes -o wide
look "every component up and healthy, with its pid, restarts (the supervisor restarts what exits) and log file"
skiff status

step "skiff apply -f manifests/examples/hello.yaml"
look "the pod runs to Completed on one of the nodes; its log is its PID (1), hostname and memory limit"
skiff apply -f manifests/examples/hello.yaml
skiff wait pod hello --for=jsonpath='{.status.phase}'=Succeeded --timeout 120s
skiff get pods hello -o wide
skiff logs hello

step "the web server's image: the offline Debian+python base (cached after the first time), then skiff build"
look "the base takes a minute the first time (debootstrap), nothing after; the build reuses its cached layers"
skiff image bootstrap debian --include python3
skiff build -t my-web-server:v1 manifests/examples/web-server
look "one image store for every node of this machine: what skiff build wrote is what the nodes run"
skiff image ls

step "skiff apply -f manifests/examples/web-server/deployment.yaml; skiff rollout status"
skiff apply -f manifests/examples/web-server/deployment.yaml
# The manifest names one replica per node of the default two; with SKIFF_DEMO_NODES it follows.
[[ $NODES == 2 ]] || skiff scale deploy/web-server --replicas "$NODES"
look "the Deployment made a ReplicaSet, which made $NODES pods; status waits until all are available"
skiff rollout status deploy/web-server --timeout 180s

step "skiff get deploy,rs,pods -o wide"
look "one web-server pod per NODE (hostPort 5000 fits once per node: the scheduler's NodePorts filter spreads them)"
skiff get deploy,rs,pods -l app=web-server -o wide

node_ips=$(skiff get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
ask_every_node() {   # $1: the version every node must answer with
  local ip answer
  for ip in $node_ips; do
    answer=""
    for _ in $(seq 1 50); do
      answer=$(get "http://$ip:5000/" 2>/dev/null) && [[ $answer == *"version $1"* ]] && break
      sleep 0.2
    done
    printf '  curl http://%s:5000/  ->  %s\n' "$ip" "${answer:-no answer}"
    [[ $answer == *"version $1"* ]] || { echo "node $ip did not answer with $1" >&2; exit 1; }
  done
}
step "curl each node's IP on port 5000"
look "every node answers, from its own pod (the pod's name and its node in the reply), version v1"
ask_every_node v1

step "skiff apply -f manifests/examples/web-server/service.yaml: one address in front of the pods"
skiff apply -f manifests/examples/web-server/service.yaml
look "a ClusterIP from the service range and NodePort 30500; the EndpointSlice lists the ready pods"
skiff get svc web-server
skiff get endpointslices -l kubernetes.io/service-name=web-server
step "curl the Service on each node: http://NODE_IP:30500/"
look "any node answers from any pod: each node's service proxy (nftables) spreads the connections"
for ip in $node_ips; do
  for _ in 1 2 3; do
    answer=""
    for _ in $(seq 1 50); do answer=$(get "http://$ip:30500/" 2>/dev/null) && break; sleep 0.2; done
    printf '  curl http://%s:30500/  ->  %s\n' "$ip" "${answer:-no answer}"
    [[ -n $answer ]] || { echo "the Service did not answer on $ip" >&2; exit 1; }
  done
done

step "rolling update to v2: skiff build --build-arg VERSION=v2; skiff set image; skiff rollout status"
skiff build --build-arg VERSION=v2 -t my-web-server:v2 manifests/examples/web-server
look "maxSurge 0 / maxUnavailable 1: one old pod stops, frees its node's port, a v2 pod starts there; then the next"
skiff set image deploy/web-server web=my-web-server:v2
skiff annotate deploy/web-server kubernetes.io/change-cause="skiff set image deploy/web-server web=my-web-server:v2" \
  --overwrite >/dev/null
skiff rollout status deploy/web-server --timeout 180s
skiff get rs,pods -l app=web-server -o wide
look "every node now answers version v2, from new pods"
ask_every_node v2
look "a revision per template, with its cause; \`skiff rollout undo deploy/web-server\` would go back to v1 the same way"
skiff rollout history deploy/web-server

step "skiff top nodes; skiff top pods"
look "CPU (millicores) and memory in use: a pod's from its cgroup; the nodes share this machine, so each reports all of it"
skiff top nodes
skiff top pods

# Only if context skiff still points at this cluster's REST API (another `skiff up` may have taken it):
# HTTPS with the admin's certificate (secure, the default), http:// for an `up --insecure` one.
rest_api=$(kubectl config view -o jsonpath='{.clusters[?(@.name=="skiff")].cluster.server}' 2>/dev/null || true)
if [[ $rest_api == "https://127.0.0.1:6444" || $rest_api == "http://127.0.0.1:6444" ]] \
    && kubectl --context skiff get nodes >/dev/null 2>&1; then
  step "kubectl --context skiff get deploy,pods -o wide"
  look "the same cluster through Kubernetes' REST API: skiff up added context skiff to ~/.kube/config"
  kubectl --context skiff get deploy,pods -o wide
fi

step "dashboards"
look "Prometheus scrapes every component and node by itself (targets from the control plane's discovery lists)"
prometheus=http://127.0.0.1:9090
for _ in $(seq 1 30); do
  answer=$(get "$prometheus/api/v1/query" --data-urlencode 'query=count(up == 1)' 2>/dev/null) \
    && [[ $answer == *'"result":[{'* ]] && break
  sleep 1
done
printf '  targets up: %s\n' "$(sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)"\].*/\1/p' <<<"${answer:-}")"
cat <<EOF
  Prometheus (on loopback):  $prometheus/
  Skiff's overview page:     $prometheus/consoles/skiff-overview.html
  Grafana dashboards (JSON): $(ls deploy/monitoring/dashboards/*.json | tr '\n' ' ')
  From another machine:      ssh -L 9090:127.0.0.1:9090 root@THIS_HOST, then http://127.0.0.1:9090/
EOF

step "done"
cat <<'EOF'
  The web server is reachable on every node's port 30500 (its Service), from any pod
  at its ClusterIP (`skiff get svc web-server`), and each node's port 5000 (hostPort).
  Stop it all and remove every pod, namespace, link, table and byte of data:
    skiff down --purge
EOF
