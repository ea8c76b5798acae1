"""Pull and push over the OCI distribution API (Docker Registry HTTP API v2).

    pull: GET manifest (an index / manifest list is resolved to linux/<this
          arch>) → GET config → GET each missing layer, streamed straight into
          ImageStore.add_layer_from_tar → commit and tag.
    push: for each blob, HEAD (skip if there) else POST an upload and PUT it
          whole → PUT the manifest under the tag.
Every manifest and blob is verified against its digest (a pull by digest
checks the manifest against the reference itself); a mismatch leaves nothing
in the store. Authentication follows the registry's 401 challenge: `Basic`, or
`Bearer` via the token service named in the challenge (with the credentials,
if any, as basic auth to that service). Credentials come from the caller or
from ~/.docker/config.json `auths`. Plain http is used for localhost /
127.0.0.1 and for registries listed as insecure.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from agent.images.errors import DigestMismatch, ImageError, ImageNotFound
from agent.images.reference import DEFAULT_DOMAIN, Reference, parse_reference
from agent.images.store import ImageStore, Layer, _arch
from skiff.progress import CountingFile, Progress

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST))
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)


class RegistryError(ImageError):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def docker_config_credentials(*, domain: str, path: Path | None = None) -> Credentials | None:
    """Credentials for `domain` from ~/.docker/config.json (`auths.<host>.auth`)."""
    path = path or Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    keys = [domain, f"https://{domain}", f"http://{domain}"]
    if domain == DEFAULT_DOMAIN:
        keys.append("https://index.docker.io/v1/")
    for key in keys:
        entry = auths.get(key)
        if entry and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(username=user, password=password)
    return None


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """Blob downloads redirect to storage hosts: never send our credentials there."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class RegistryClient:
    def __init__(self, *, ref: Reference, credentials: Credentials | None = None,
                 insecure: bool | None = None, timeout: float = 60.0) -> None:
        self.ref = ref
        host = "registry-1.docker.io" if ref.domain == DEFAULT_DOMAIN else ref.domain
        if insecure is None:
            listed = os.environ.get("SKIFF_INSECURE_REGISTRIES", "").split(",")
            insecure = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]") or ref.domain in listed
        self.base = f"{'http' if insecure else 'https'}://{host}/v2/{ref.path}"
        self.credentials = credentials if credentials is not None else \
            docker_config_credentials(domain=ref.domain)
        self.timeout = timeout
        self.auth_header: str | None = None
        self.opener = urllib.request.build_opener(_NoAuthOnRedirect())

    # ---- HTTP + auth -----------------------------------------------------
    def _authenticate(self, challenge: str, *, push: bool) -> None:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(f"{self.ref.domain}: authentication required (no credentials)")
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            self.auth_header = "Basic " + base64.b64encode(raw).decode()
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"{self.ref.domain}: unsupported auth challenge {challenge!r}")
        scope = f"repository:{self.ref.path}:{'pull,push' if push else 'pull'}"
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        req = urllib.request.Request(params["realm"] + "?" + urllib.parse.urlencode(query))
        if self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"token service {params['realm']}: HTTP {exc.code} "
                                f"({'bad credentials' if exc.code in (401, 403) else exc.reason})") from None
        except (urllib.error.URLError, ValueError) as exc:
            raise RegistryError(f"token service {params['realm']}: {exc}") from None
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service {params['realm']}: no token in the answer")
        self.auth_header = f"Bearer {token}"

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                data=None, push: bool = False, ok: tuple[int, ...] = (200,)):
        """One request, retried once after answering an auth challenge. Returns the
        open response (caller closes) or raises RegistryError / ImageNotFound."""
        for attempt in (0, 1):
            req = urllib.request.Request(url if url.startswith("http") else self.base + url,
                                         method=method, data=data, headers=dict(headers or {}))
            if self.auth_header:
                req.add_header("Authorization", self.auth_header)
            try:
                resp = self.opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0 and exc.headers.get("WWW-Authenticate"):
                    self._authenticate(exc.headers["WWW-Authenticate"], push=push)
                    if hasattr(data, "seek"):
                        data.seek(0)
                    continue
                if exc.code in ok:
                    return exc
                detail = exc.read(2000).decode("utf-8", "replace").strip()
                if exc.code == 404:
                    raise ImageNotFound(f"{self.ref.familiar()}: not found in {self.ref.domain} "
                                        f"({method} {req.full_url}: 404)") from None
                if exc.code in (401, 403):
                    raise RegistryError(f"{self.ref.domain}: access denied ({exc.code}) for "
                                        f"{method} {req.full_url}") from None
                raise RegistryError(f"{method} {req.full_url}: HTTP {exc.code}: {detail}") from None
            except urllib.error.URLError as exc:
                raise RegistryError(f"{self.ref.domain}: cannot connect: {exc.reason}") from None
            if resp.status not in ok:
                resp.close()
                raise RegistryError(f"{method} {req.full_url}: unexpected HTTP {resp.status}")
            return resp
        raise RegistryError(f"{self.ref.domain}: authentication failed")

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) — verified against the digest it is asked by."""
        with self.request("GET", f"/manifests/{reference}", headers={"Accept": ACCEPT}) as resp:
            body = resp.read()
            media_type = resp.headers.get("Content-Type", "").split(";")[0]
            announced = resp.headers.get("Docker-Content-Digest")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = reference if reference.startswith("sha256:") else announced
        if expected and expected != digest:
            raise DigestMismatch(f"manifest {self.ref.familiar()}: announced {expected}, content has {digest}")
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = json.loads(body).get("mediaType", MT_OCI_MANIFEST)
        return body, media_type, digest


def _pick_platform(index: dict) -> str:
    arch = _arch()
    for m in index.get("manifests", []):
        plat = m.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == arch:
            return m["digest"]
    available = [f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                 for m in index.get("manifests", [])]
    raise RegistryError(f"no manifest for linux/{arch} (the image has {', '.join(available) or 'none'})")


def pull(*, store: ImageStore, ref: str, credentials: Credentials | None = None,
         insecure: bool | None = None, progress: TextIO | None = None, meter: Progress | None = None) -> str:
    """Pull `ref` into the store; returns the image id. `progress` gets docker's
    lines (a layer pulled); `meter` the bytes of the layers as they arrive."""
    parsed = parse_reference(ref)
    client = RegistryClient(ref=parsed, credentials=credentials, insecure=insecure)

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"{parsed.tag or parsed.digest}: Pulling from {parsed.familiar_name()}")
    body, media_type, digest = client.get_manifest(parsed.digest or parsed.tag or "latest")
    if media_type in INDEX_TYPES:
        body, media_type, digest = client.get_manifest(_pick_platform(json.loads(body)))
    manifest = json.loads(body)
    if "config" not in manifest:
        raise RegistryError(f"{parsed.familiar()}: unsupported manifest type {media_type}")
    with client.request("GET", f"/blobs/{manifest['config']['digest']}") as resp:
        config_bytes = resp.read()
    got = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    if got != manifest["config"]["digest"]:
        raise DigestMismatch(f"config of {parsed.familiar()}: expected {manifest['config']['digest']}, got {got}")
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    layers: list[Layer] = []
    total = sum(d.get("size", 0) for d in manifest["layers"]) or None
    done = 0   # bytes of the layers before this one
    for i, (desc, diff_id) in enumerate(zip(manifest["layers"], diff_ids)):
        short = desc["digest"].removeprefix("sha256:")[:12]
        if store.has_blob(desc["digest"]) and store.layer_dir(diff_id).exists():
            say(f"{short}: Already exists")
        else:
            with client.request("GET", f"/blobs/{desc['digest']}") as resp:
                source = resp
                if meter is not None:
                    def moved(n: int, *, short=short, i=i, done=done) -> None:
                        meter.update(stage=f"pulling {short}", done=i, total=len(diff_ids), unit="layers done",
                                     nbytes=done + n, total_bytes=total)
                    moved(0)
                    source = CountingFile(resp, moved)
                store.add_layer_from_tar(fileobj=source, expected_digest=desc["digest"],
                                         expected_diff_id=diff_id, media_type=desc["mediaType"],
                                         size=desc.get("size"))
            say(f"{short}: Pull complete ({desc.get('size', 0)} bytes)")
        done += desc.get("size", 0)
        layers.append(Layer(digest=desc["digest"], diff_id=diff_id, size=desc.get("size", 0),
                            media_type=desc["mediaType"]))
    refs = [str(Reference(domain=parsed.domain, path=parsed.path, tag=parsed.tag))] if parsed.tag else []
    image_id = store.commit_raw(config_bytes=config_bytes, layers=layers, refs=refs,
                                manifest_bytes=body, manifest_digest=digest)
    if meter is not None:
        meter.finish()
    say(f"Digest: {digest}")
    say(f"Status: Downloaded image for {parsed.familiar()}")
    return image_id


def push(*, store: ImageStore, ref: str, credentials: Credentials | None = None,
         insecure: bool | None = None, progress: TextIO | None = None, meter: Progress | None = None) -> str:
    """Push the local image `ref` (to the registry its name says); returns the
    manifest digest. `progress` gets docker's lines, `meter` the bytes sent."""
    parsed = parse_reference(ref)
    if not parsed.tag:
        raise RegistryError(f"{ref}: push needs a tag")
    digest, manifest, _config = store.manifest(ref)
    client = RegistryClient(ref=parsed, credentials=credentials, insecure=insecure)

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"The push refers to repository [{parsed.name}]")
    blobs = [*manifest["layers"], manifest["config"]]
    total = sum(d.get("size", 0) for d in blobs) or None
    done = 0   # bytes of the blobs before this one (sent or already there)
    for i, desc in enumerate(blobs):
        done_before, done = done, done + desc.get("size", 0)
        short = desc["digest"].removeprefix("sha256:")[:12]
        head = client.request("HEAD", f"/blobs/{desc['digest']}", push=True, ok=(200, 404))
        head.close()
        if head.status == 200:
            say(f"{short}: Layer already exists")
            continue
        with client.request("POST", "/blobs/uploads/", push=True, ok=(202,), data=b"") as resp:
            location = resp.headers["Location"]
        location = urllib.parse.urljoin(client.base, location)
        sep = "&" if "?" in location else "?"
        path = store.blob_path(desc["digest"])
        with open(path, "rb") as f:
            data = f
            if meter is not None:
                def moved(n: int, *, short=short, i=i, base=done_before) -> None:
                    meter.update(stage=f"pushing {short}", done=i, total=len(blobs), unit="blobs done",
                                 nbytes=base + n, total_bytes=total)
                moved(0)
                data = CountingFile(f, moved)
            client.request("PUT", f"{location}{sep}digest={desc['digest']}", push=True, ok=(201,),
                           data=data, headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(path.stat().st_size)}).close()
        say(f"{short}: Pushed")
    body = store.read_blob(digest)
    with client.request("PUT", f"/manifests/{parsed.tag}", push=True, ok=(201,), data=body,
                        headers={"Content-Type": manifest.get("mediaType", MT_OCI_MANIFEST)}) as resp:
        announced = resp.headers.get("Docker-Content-Digest")
    if announced and announced != digest:
        raise DigestMismatch(f"registry stored the manifest as {announced}, expected {digest}")
    if meter is not None:
        meter.finish()
    say(f"{parsed.tag}: digest: {digest} size: {len(body)}")
    return digest
