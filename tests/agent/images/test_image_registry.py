"""Pull and push against Debian's docker-registry, started by the test on
127.0.0.1: anonymous, basic auth (htpasswd), and token auth (a token service
in the test signing JWTs the registry verifies). Also a manifest list
resolved to this machine's platform, and a tampered blob rejected."""
from __future__ import annotations

import base64
import warnings
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.images.bootstrap import bootstrap_busybox
from tests.conftest import free_port
from agent.images.errors import DigestMismatch, ImageError
from agent.images.registry import Credentials, RegistryClient, pull, push
from agent.images.reference import parse_reference
from agent.images.store import ImageStore, _arch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt for htpasswd, via the system's libxcrypt

CANDIDATES = [os.environ.get("SKIFF_TEST_REGISTRY", ""), shutil.which("docker-registry") or "",
              "/usr/bin/docker-registry"]
REGISTRY = next((c for c in CANDIDATES if c and os.access(c, os.X_OK)), None)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(REGISTRY is None, reason="apt-get install docker-registry")]


class Registry:
    def __init__(self, root: Path, auth: dict | None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = {"version": 0.1, "log": {"level": "error"},
                  "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
                  "http": {"addr": self.address}}
        if auth:
            config["auth"] = auth
        (root / "config.yml").write_text(json.dumps(config))   # JSON is YAML
        self.log = open(root / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def make_registry(tmp_dir):
    started: list[Registry] = []

    def make(auth: dict | None = None) -> Registry:
        d = tmp_dir / f"registry{len(started)}"
        d.mkdir()
        r = Registry(d, auth)
        started.append(r)
        return r
    try:
        yield make
    finally:
        for r in started:
            r.stop()


def test_push_then_pull_anonymous(store, tmp_dir, make_registry):
    reg = make_registry()
    bootstrap_busybox(store=store)
    ref = f"{reg.address}/tools/busybox:1"
    store.tag("busybox", ref)
    out = io.StringIO()
    digest = push(store=store, ref=ref, progress=out)
    assert "Pushed" in out.getvalue() and digest in out.getvalue()
    out = io.StringIO()
    push(store=store, ref=ref, progress=out)                       # second time: nothing to send
    assert "Pushed" not in out.getvalue() and "already exists" in out.getvalue()
    fresh = ImageStore(root=tmp_dir / "fresh")
    image_id = pull(store=fresh, ref=ref)
    assert image_id == store.resolve("busybox").id
    img = fresh.resolve(ref)
    assert (img.lower_dirs[0] / "bin/busybox").exists()
    by_digest = pull(store=ImageStore(root=tmp_dir / "bydigest"), ref=f"{reg.address}/tools/busybox@{digest}")
    assert by_digest == image_id
    with pytest.raises(ImageError) as err:
        pull(store=fresh, ref=f"{reg.address}/tools/nosuch:1")
    assert "not found" in str(err.value)


def test_basic_auth(store, tmp_dir, make_registry):
    htpasswd = tmp_dir / "htpasswd"
    htpasswd.write_text(f"alice:{crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    reg = make_registry({"htpasswd": {"realm": "skiff-test", "path": str(htpasswd)}})
    bootstrap_busybox(store=store)
    ref = f"{reg.address}/private/bb:1"
    store.tag("busybox", ref)
    with pytest.raises(ImageError) as err:
        push(store=store, ref=ref)
    assert "authentication required" in str(err.value)
    with pytest.raises(ImageError) as err:
        push(store=store, ref=ref, credentials=Credentials("alice", "wrong"))
    assert "access denied" in str(err.value) or "authentication" in str(err.value)
    push(store=store, ref=ref, credentials=Credentials("alice", "s3cret"))
    fresh = ImageStore(root=tmp_dir / "fresh")
    assert pull(store=fresh, ref=ref, credentials=Credentials("alice", "s3cret")) == store.resolve(ref).id


def _token_service(key, cert_der: bytes, issuer: str, service: str, seen: list[str]):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            from urllib.parse import parse_qs, urlsplit
            q = parse_qs(urlsplit(self.path).query)
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            if auth != "Basic " + base64.b64encode(b"bob:pw").decode():
                self.send_response(401)
                self.end_headers()
                return
            _, name, actions = q["scope"][0].split(":")
            now = int(time.time())
            header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
            claims = {"iss": issuer, "sub": "bob", "aud": service, "exp": now + 300, "nbf": now - 10,
                      "iat": now, "jti": os.urandom(8).hex(),
                      "access": [{"type": "repository", "name": name, "actions": actions.split(",")}]}
            signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
            sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": f"{signing}.{b64(sig)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_token_auth(store, tmp_dir, make_registry):
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import datetime
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff-test-token")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_dir / "token.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    seen: list[str] = []
    server = _token_service(key, cert.public_bytes(serialization.Encoding.DER), "skiff-test-issuer",
                            "skiff-test-registry", seen)
    try:
        reg = make_registry({"token": {"realm": f"http://127.0.0.1:{server.server_port}/token",
                                       "service": "skiff-test-registry", "issuer": "skiff-test-issuer",
                                       "rootcertbundle": str(tmp_dir / "token.pem")}})
        bootstrap_busybox(store=store)
        ref = f"{reg.address}/team/bb:2"
        store.tag("busybox", ref)
        with pytest.raises(ImageError) as err:
            push(store=store, ref=ref, credentials=Credentials("bob", "nope"))
        assert "token service" in str(err.value)
        push(store=store, ref=ref, credentials=Credentials("bob", "pw"))
        fresh = ImageStore(root=tmp_dir / "fresh")
        assert pull(store=fresh, ref=ref, credentials=Credentials("bob", "pw")) == store.resolve(ref).id
        assert seen and all(s.startswith("Basic ") for s in seen)
    finally:
        server.shutdown()
        server.server_close()


def _put(client: RegistryClient, path: str, body: bytes, media_type: str) -> None:
    client.request("PUT", path, data=body, ok=(201,), push=True,
                   headers={"Content-Type": media_type}).close()


def test_manifest_list_resolved_to_platform(store, tmp_dir, make_registry):
    reg = make_registry()
    bootstrap_busybox(store=store)
    ref = f"{reg.address}/multi/bb:1"
    store.tag("busybox", ref)
    digest = push(store=store, ref=ref)
    # Another platform's image: same layer, a config that says s390x.
    _, manifest, config = store.manifest("busybox")
    from agent.images.store import Layer
    other_ref = f"{reg.address}/multi/bb:s390x"
    store.commit_image(config={**config, "architecture": "s390x", "config": {"Cmd": ["s390x"]}},
                       layers=[Layer(digest=manifest["layers"][0]["digest"],
                                     diff_id=config["rootfs"]["diff_ids"][0],
                                     size=manifest["layers"][0]["size"])], ref=other_ref)
    other = push(store=store, ref=other_ref)
    client = RegistryClient(ref=parse_reference(ref))
    size = len(store.read_blob(digest))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other,
                  "size": len(store.read_blob(other)), "platform": {"os": "linux", "architecture": "s390x"}},
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                  "size": size, "platform": {"os": "linux", "architecture": _arch()}}]}
    _put(client, "/manifests/multi", json.dumps(index).encode(), index["mediaType"])
    fresh = ImageStore(root=tmp_dir / "fresh")
    assert pull(store=fresh, ref=f"{reg.address}/multi/bb:multi") == store.resolve("busybox").id
    assert fresh.resolve(f"{reg.address}/multi/bb:multi").config.cmd == ("sh",)


def test_pull_by_wrong_digest_and_tampered_blob(store, tmp_dir, make_registry):
    reg = make_registry()
    bootstrap_busybox(store=store)
    ref = f"{reg.address}/t/bb:1"
    store.tag("busybox", ref)
    push(store=store, ref=ref)
    # Tamper with the layer on the registry's disk: its digest no longer matches.
    layer_digest = store.manifest(ref)[1]["layers"][0]["digest"].removeprefix("sha256:")
    data_file = next((tmp_dir / "registry0/data").rglob(f"blobs/sha256/{layer_digest[:2]}/{layer_digest}/data"))
    raw = bytearray(data_file.read_bytes())
    raw[5000] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    fresh = ImageStore(root=tmp_dir / "fresh")
    with pytest.raises(DigestMismatch):
        pull(store=fresh, ref=ref)
    assert fresh.list() == [] and not any(fresh.blobs.iterdir()) and not any(fresh.tmp.iterdir())


def test_push_and_pull_report_bytes_to_a_meter(store, tmp_dir, make_registry):
    from tests.agent.images.test_image_bootstrap import Recorder

    reg = make_registry()
    bootstrap_busybox(store=store)
    ref = f"{reg.address}/tools/busybox:meter"
    store.tag("busybox", ref)
    _, manifest, _ = store.manifest(ref)
    layer = manifest["layers"][0]["size"]
    pushed = Recorder()
    push(store=store, ref=ref, meter=pushed)
    total = layer + manifest["config"]["size"]
    short = manifest["layers"][0]["digest"].removeprefix("sha256:")[:12]
    assert pushed.updates[0] == (f"pushing {short}", 0, 2, "blobs done", 0, total)
    assert (f"pushing {short}", 0, 2, "blobs done", layer, total) in pushed.updates
    assert pushed.messages == ["finish None"]
    pulled = Recorder()
    pull(store=ImageStore(root=tmp_dir / "fresh"), ref=ref, meter=pulled)
    assert pulled.updates[0] == (f"pulling {short}", 0, 1, "layers done", 0, layer)
    assert pulled.updates[-1] == (f"pulling {short}", 0, 1, "layers done", layer, layer)
    assert all(a[4] <= b[4] for a, b in zip(pulled.updates, pulled.updates[1:]))
