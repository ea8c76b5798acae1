"""The trailing-metadata keys of Skiff's gRPC API, beside api.proto's messages:
the server (controlplane/api/service.py) sets them, the client (skiff/client.py) reads them."""

FIELD_PATH_METADATA = "skiff-field-path"   # the field an invalid request names
ORIGIN_METADATA = "skiff-origin"   # on every error the API server sends (vs. an unreachable one)
WARNING_METADATA = "skiff-warning"   # one per warning about a write the server accepted
RETRY_AFTER_METADATA = "retry-after"   # seconds, on RESOURCE_EXHAUSTED from the max-in-flight limit
