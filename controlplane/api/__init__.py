"""The control plane's gRPC API server (service.py) and its object rules (objects.py)."""
