"""Secrets encrypted at rest (issue 12, decision 32), as Kubernetes' aesgcm
provider: a stored Secret is

    k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><AES-256-GCM ciphertext and tag>

with the etcd key as associated data (a value copied under another key does not
decrypt). The first key of the key file encrypts; every key decrypts, so a new
key is added first and the old one kept until every Secret is written again
(Kubernetes' rotation). A value without the prefix is read as plaintext (written
before encryption was on) and encrypted at its next write.

The key file (`DATA/pki/encryption.key`, 0600 beside the CA): one `name:base64`
line per key, 32 bytes each.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_BYTES = 12


class EncryptionError(Exception):
    """A stored value that cannot be decrypted, or a key file that cannot be used."""


class SecretEncryption:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise EncryptionError("no encryption key")
        self.write_key = keys[0][0]
        self._keys = {name: AESGCM(key) for name, key in keys}

    @classmethod
    def from_file(cls, path: Path | str) -> "SecretEncryption":
        keys = []
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise EncryptionError(f"cannot read the encryption key file {path}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, encoded = line.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                key = b""
            if not name or ":" in name or len(key) != 32:
                raise EncryptionError(f"{path}:{number}: expected NAME:BASE64 of a 32-byte key")
            keys.append((name, key))
        return cls(keys)

    def encrypt(self, key: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.write_key].encrypt(nonce, plaintext, key)
        return PREFIX + self.write_key.encode() + b":" + nonce + sealed

    def decrypt(self, key: bytes, value: bytes) -> bytes:
        if not value.startswith(PREFIX):
            return value
        name, sep, rest = value[len(PREFIX):].partition(b":")
        aead = self._keys.get(name.decode(errors="replace"))
        if not sep or aead is None:
            raise EncryptionError(f"{key.decode(errors='replace')}: encrypted with key "
                                  f"{name.decode(errors='replace')!r}, which the key file does not hold")
        try:
            return aead.decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], key)
        except InvalidTag:
            raise EncryptionError(f"{key.decode(errors='replace')}: the stored value does not decrypt "
                                  "(corrupt, or moved from another key)") from None

