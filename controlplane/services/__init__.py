"""The API server's side of Services: the ClusterIP and NodePort allocators
(ranges.py pure, allocation.py persisted in the store with compare-and-swap)
and the registry hook that takes and gives back a Service's values
(hook.py). Controllers (EndpointSlices, ServiceLB) live in
controlplane/controllers/."""
