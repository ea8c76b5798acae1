"""Secrets encrypted at rest (controlplane/store/encryption.py) in a real etcd:
the raw value holds no plaintext, the store reads it back, an old plaintext
value still reads, and a key the file does not hold is named."""
from __future__ import annotations

import asyncio
import base64

import aetcd
import pytest

from controlplane.store import Store
from controlplane.store.encryption import EncryptionError, SecretEncryption
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

pytestmark = pytest.mark.etcd
SECRET = kinds.kind_named("Secret")


def secret(name: str, value: bytes) -> types_pb2.Secret:
    s = types_pb2.Secret(kind="Secret", api_version="v1")
    s.metadata.name, s.metadata.namespace = name, "default"
    s.data["password"] = value
    return s


def keys(*names: str) -> list[tuple[str, bytes]]:
    return [(name, bytes([i + 1]) * 32) for i, name in enumerate(names)]


def raw(etcd: str, key: bytes) -> bytes:
    async def read():
        host, _, port = etcd.rpartition(":")
        async with aetcd.Client(host=host, port=int(port)) as client:
            return (await client.get(key)).value
    return asyncio.run(read())


def run(etcd, prefix, body, encryption):
    async def main():
        store = Store(endpoint=etcd, root=prefix, encryption=encryption)
        try:
            return await asyncio.wait_for(body(store), 30)
        finally:
            await store.close()
    return asyncio.run(main())


def test_a_secret_is_ciphertext_in_etcd_and_plaintext_through_the_store(etcd, etcd_prefix):
    encryption = SecretEncryption(keys("key1"))

    async def body(store):
        await store.create(secret("db", b"hunter2-plaintext"))
        return (await store.get(SECRET, "default", "db")).data["password"]
    assert run(etcd, etcd_prefix, body, encryption) == b"hunter2-plaintext"
    stored = raw(etcd, f"{etcd_prefix}/secrets/default/db".encode())
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"hunter2" not in stored and b"password" not in stored


def test_plaintext_written_before_still_reads_and_rotation_keeps_old_keys(etcd, etcd_prefix):
    async def write_plain(store):
        await store.create(secret("old", b"before"))
    run(etcd, etcd_prefix, write_plain, None)

    async def write_key1(store):
        assert (await store.get(SECRET, "default", "old")).data["password"] == b"before"
        await store.create(secret("new", b"after"))
    run(etcd, etcd_prefix, write_key1, SecretEncryption(keys("key1")))

    async def read_rotated(store):   # key2 first (encrypts), key1 kept (decrypts)
        return (await store.get(SECRET, "default", "new")).data["password"]
    assert run(etcd, etcd_prefix, read_rotated, SecretEncryption([(n, k) for n, k in reversed(keys("key1", "key2"))])
               ) == b"after"

    async def read_without_key1(store):
        await store.get(SECRET, "default", "new")
    with pytest.raises(EncryptionError, match="encrypted with key 'key1', which the key file does not hold"):
        run(etcd, etcd_prefix, read_without_key1, SecretEncryption([("key2", b"\x02" * 32)]))


def test_a_bad_key_file_names_the_line(tmp_path):
    path = tmp_path / "encryption.key"
    path.write_text(f"key1:{base64.b64encode(b'x' * 32).decode()}\nkey2:short\n")
    with pytest.raises(EncryptionError, match=r"encryption.key:2: expected NAME:BASE64 of a 32-byte key"):
        SecretEncryption.from_file(path)
