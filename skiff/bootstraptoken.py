"""Bootstrap tokens as kubeadm keeps them (issue 12, decision 36): pure parts
shared by the CLI (`skiff token`, `skiff join`) and the control plane (the
bearer-token authenticator, the bootstrap signer, the token cleaner).

A token is `<id>.<secret>` (6 and 16 characters of [a-z0-9]); it lives in a
Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` in
kube-system, with Kubernetes' keys:

    token-id, token-secret, expiration (RFC 3339), description,
    usage-bootstrap-authentication, usage-bootstrap-signing ("true"),
    auth-extra-groups ("system:bootstrappers:kubeadm:default-node-token")

Authenticated, a token is user `system:bootstrap:<id>` in `system:bootstrappers`
(plus its extra groups). Signing: the `cluster-info` ConfigMap in kube-public
carries, per signing token, `jws-kubeconfig-<id>`: a detached JWS (HS256, key =
the whole token, header kid = id) of its `kubeconfig` value, so a joining
machine that knows the token can tell the kubeconfig (and the CA in it) came
from someone who knows it too - then it pins the CA by the hash of its public
key (skiff.pki.ca_cert_hash).
"""
from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
import string
import warnings
from dataclasses import dataclass

import jwt
from jwt.utils import base64url_encode
from jwt.warnings import InsecureKeyLengthWarning

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
CLUSTER_INFO = "cluster-info"
CLUSTER_INFO_NAMESPACE = "kube-public"
JWS_PREFIX = "jws-kubeconfig-"
USAGES = ("authentication", "signing")
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = string.ascii_lowercase + string.digits


class TokenError(ValueError):
    """A token, its Secret or a signature that is not usable; the message says why."""


@dataclass(frozen=True)
class BootstrapToken:
    id: str
    secret: str
    expiration: datetime.datetime | None = None
    usages: tuple[str, ...] = USAGES
    groups: tuple[str, ...] = (DEFAULT_GROUP,)
    description: str = ""

    @property
    def token(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def user(self) -> str:
        return USER_PREFIX + self.id

    def expired(self, now: datetime.datetime) -> bool:
        return self.expiration is not None and now >= self.expiration


def generate() -> str:
    """A new random token, `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm's format)."""
    return ".".join("".join(secrets.choice(_ALPHABET) for _ in range(n)) for n in (6, 16))


def split(token: str) -> tuple[str, str]:
    """(id, secret) of a token; TokenError naming the expected format."""
    match = TOKEN_RE.match(token.strip())
    if not match:
        raise TokenError(f'the token "{_redact(token)}" is not of the form "[a-z0-9]{{6}}.[a-z0-9]{{16}}"')
    return match.group(1), match.group(2)


def _redact(token: str) -> str:
    """A token as it may appear in messages and logs: its id, never its secret."""
    head, dot, _ = token.strip().partition(".")
    return f"{head}.<redacted>" if dot else "<redacted>"


def format_time(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TokenError(f'expiration "{text}" is not an RFC 3339 time') from None
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def parse_ttl(text: str) -> datetime.timedelta | None:
    """kubeadm's --ttl: a Go duration (24h, 90m, 1h30m, 45s); 0 means never expires (None)."""
    total, rest = 0.0, text.strip()
    if rest in ("0", "0s"):
        return None
    units = {"h": 3600, "m": 60, "s": 1}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", rest):
        total += float(number) * units[unit]
    if not rest or re.sub(r"\d+(?:\.\d+)?[hms]", "", rest) or total <= 0:
        raise TokenError(f'invalid --ttl "{text}": a duration such as 24h, 90m or 1h30m (0: never expires)')
    return datetime.timedelta(seconds=total)


def validate_groups(groups: list[str]) -> None:
    for g in groups:
        if not _GROUP_RE.match(g):
            raise TokenError(f'--groups: "{g}" must start with "system:bootstrappers:" '
                             '(lower-case letters, digits, ":" and "-")')


def secret_data(t: BootstrapToken) -> dict[str, bytes]:
    """The Secret's data, Kubernetes' keys."""
    data = {"token-id": t.id, "token-secret": t.secret}
    if t.description:
        data["description"] = t.description
    if t.expiration is not None:
        data["expiration"] = format_time(t.expiration)
    for usage in t.usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if t.groups:
        data["auth-extra-groups"] = ",".join(t.groups)
    return {k: v.encode() for k, v in data.items()}


def from_secret(name: str, type_: str, data: dict[str, bytes]) -> BootstrapToken:
    """The token a Secret holds; TokenError when it is not a valid bootstrap-token Secret."""
    if type_ != SECRET_TYPE:
        raise TokenError(f"secret {name} is of type {type_!r}, not {SECRET_TYPE}")
    text = {k: v.decode(errors="replace") for k, v in data.items()}
    token_id, secret = text.get("token-id", ""), text.get("token-secret", "")
    if name != SECRET_PREFIX + token_id:
        raise TokenError(f"secret {name}: token-id {token_id!r} does not match its name")
    split(f"{token_id}.{secret}")
    expiration = parse_time(text["expiration"]) if text.get("expiration") else None
    usages = tuple(u for u in USAGES if text.get(f"usage-bootstrap-{u}") == "true")
    groups = tuple(g for g in text.get("auth-extra-groups", "").split(",") if g)
    return BootstrapToken(token_id, secret, expiration, usages, groups, text.get("description", ""))


# ------------------------------------------------------------ JWS (the bootstrap signer's)

# kubeadm's verifier (cluster-bootstrap's DetachedTokenIsValid) computes the signature again and compares
# strings, so the bytes must be go-jose's: header {"alg":"HS256","kid":ID} (sorted keys, no "typ"), the
# payload base64url-encoded into the signing input and then cut out (`header..signature`). PyJWS's own
# is_payload_detached is RFC 7797 (b64: false, the raw payload signed), which kubeadm would refuse.
# The key, ID.SECRET, is 23 bytes: fixed by kubeadm, shorter than PyJWT's advice for HS256.

def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """A compact JWS of `content` with its payload left out (`header..signature`), HS256 keyed by the token."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        compact = jwt.api_jws.encode(content.encode(), f"{token_id}.{token_secret}", algorithm="HS256",
                                     headers={"kid": token_id, "typ": None})
    header, _, signature = compact.split(".")
    return f"{header}..{signature}"


def verify_signature(content: str, detached: str, token_id: str, token_secret: str) -> bool:
    """Whether `detached` signs `content` with this token (HS256 only, kid = its id): the payload put
    back, PyJWS checks the MAC (in constant time)."""
    header, sep, signature = detached.partition("..")
    compact = f"{header}.{base64url_encode(content.encode()).decode()}.{signature}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            jws = jwt.api_jws.decode_complete(compact, f"{token_id}.{token_secret}", algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return False
    return bool(sep) and jws["header"].get("kid") == token_id


# ------------------------------------------------------------ cluster-info's kubeconfig

def cluster_info_kubeconfig(*, server: str, ca_pem: bytes, api_server: str = "") -> str:
    """kubeadm's cluster-info kubeconfig: one cluster (name ""), the CA inline, no user. `server` is the
    REST front door (https://HOST:PORT); `api_server` Skiff's gRPC API, which agents dial, as an extension."""
    cluster: dict = {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server}
    if api_server:
        cluster["extensions"] = [{"name": "skiff.dev/api-server", "extension": api_server}]
    doc = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": cluster}],
           "contexts": [], "current-context": "", "preferences": {}, "users": []}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class ClusterInfo:
    server: str        # https://HOST:PORT (REST)
    api_server: str    # HOST:PORT (gRPC)
    ca_pem: bytes


def parse_cluster_info_kubeconfig(text: str) -> ClusterInfo:
    import yaml
    try:
        doc = yaml.safe_load(text)
        cluster = doc["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"])
        server = cluster["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise TokenError(f"the cluster-info kubeconfig is not usable: {exc}") from None
    extensions = {e.get("name"): e.get("extension") for e in cluster.get("extensions") or [] if isinstance(e, dict)}
    api_server = str(extensions.get("skiff.dev/api-server") or "")
    return ClusterInfo(server=server, api_server=api_server, ca_pem=ca)
