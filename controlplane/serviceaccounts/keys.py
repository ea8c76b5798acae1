"""The service-account signing key: DATA/pki/sa.key (EC P-256, PKCS#8 PEM,
0600, as kubeadm's sa.key beside the CA), created by the control plane on
its first secure start when absent, and sa.pub (its public key) beside it for
whoever verifies tokens elsewhere. Written to a temporary 0600 file and
renamed, so no reader sees half a key; never logged (the key id is).
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.serviceaccounts.tokens import load_private_key

KEY_NAME, PUBLIC_NAME = "sa.key", "sa.pub"

def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key at `path`, created first if there is none. OSError/ValueError name the file."""
    if path.exists():
        try:
            return load_private_key(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    _write(path.with_name(PUBLIC_NAME), key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key
