"""The control plane's gRPC API server: service.py (gRPC) over registry.py (the REST logic; the
kinds' rules are their strategies in skiff/api/kinds/)."""
