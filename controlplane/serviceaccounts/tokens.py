"""ServiceAccount tokens: JWTs signed ES256 with the cluster's service-account
key (DATA/pki/sa.key), with Kubernetes' claims, so a token from Skiff reads as
one from kube-apiserver:

    {"iss": ISSUER, "sub": "system:serviceaccount:NS:NAME", "aud": [...],
     "exp": .., "iat": .., "nbf": .., "jti": uuid,
     "kubernetes.io": {"namespace": NS, "serviceaccount": {"name", "uid"},
                       "pod": {"name", "uid"}}}     (pod: a bound token)

Pure: no store, no clock but the one passed in. `verify` checks the signature,
the issuer, the times and the audience and returns the claims; the
authenticator (authenticator.py) then checks that the account and the bound
pod still exist with those uids. Every refusal is a `TokenInvalid` with a
one-line reason in Kubernetes' words. The key never appears in a message.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from skiff.api.kinds.serviceaccount import username

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION_SECONDS = 600          # Kubernetes' TokenRequest minimum
DEFAULT_EXPIRATION_SECONDS = 3600
_LEEWAY = 60                          # clock skew allowed on nbf/exp, as Kubernetes' jwt validation


class TokenInvalid(Exception):
    """Not a valid ServiceAccount token; str() is the one-line reason."""


@dataclass(frozen=True)
class Claims:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    issued: int
    pod_name: str = ""
    pod_uid: str = ""

    @property
    def user(self) -> str:
        return username(self.namespace, self.name)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """Kubernetes' keyIDFromPublicKey: the SHA-256 of the DER public key, base64url."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the service-account signing key must be an EC P-256 private key (ES256)")
    return key


def unverified_subject(token: str) -> str:
    """The `sub` a token claims, unchecked: only to say in a refusal whose token it was."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
        return str(claims.get("sub", "")) if isinstance(claims, dict) else ""
    except (ValueError, TypeError, IndexError):
        return ""


class TokenSigner:
    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str = DEFAULT_ISSUER,
                 clock: Callable[[], float] = time.time) -> None:
        self._key, self.issuer, self.clock = key, issuer, clock
        self._kid = key_id(key.public_key())

    def verifier(self, *, audiences: Iterable[str] = ()) -> "TokenVerifier":
        return TokenVerifier(self._key.public_key(), issuer=self.issuer, audiences=audiences, clock=self.clock)

    def sign(self, *, namespace: str, name: str, uid: str, audiences: Iterable[str], expiration_seconds: int,
             pod_name: str = "", pod_uid: str = "") -> tuple[str, int]:
        """(token, expiry as Unix seconds)."""
        now = int(self.clock())
        expires = now + int(expiration_seconds)
        private = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod_name:
            private["pod"] = {"name": pod_name, "uid": pod_uid}
        claims = {"aud": list(audiences), "exp": expires, "iat": now, "iss": self.issuer, "jti": str(uuid.uuid4()),
                  "kubernetes.io": private, "nbf": now, "sub": username(namespace, name)}
        header = {"alg": "ES256", "kid": self._kid}
        signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}." \
                        f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}", expires


class TokenVerifier:
    """Checks tokens this cluster's key signed, for the API server's audiences."""

    def __init__(self, public: ec.EllipticCurvePublicKey, *, issuer: str = DEFAULT_ISSUER,
                 audiences: Iterable[str] = (), clock: Callable[[], float] = time.time) -> None:
        self._public, self.issuer, self.clock = public, issuer, clock
        self.audiences = tuple(audiences) or (issuer,)

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and token.startswith("eyJ")

    def verify(self, token: str) -> Claims:
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_unb64(header_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(signature_b64)
        except (ValueError, TypeError):
            raise TokenInvalid("the token is not a JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or not isinstance(claims, dict):
            raise TokenInvalid(f"unsupported token signing algorithm {header.get('alg') if isinstance(header, dict) else ''!r}")
        if len(signature) != 64:
            raise TokenInvalid("invalid token signature")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self._public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise TokenInvalid("invalid token signature (not signed by this cluster's service-account key)") \
                from None
        if claims.get("iss") != self.issuer:
            raise TokenInvalid(f"token issuer {claims.get('iss')!r} is not {self.issuer!r}")
        now = self.clock()
        try:
            expires, issued, not_before = int(claims["exp"]), int(claims.get("iat", 0)), int(claims.get("nbf", 0))
        except (KeyError, TypeError, ValueError):
            raise TokenInvalid("the token has no valid exp claim") from None
        if now > expires + _LEEWAY:
            raise TokenInvalid("service account token has expired")
        if now + _LEEWAY < not_before:
            raise TokenInvalid("service account token is not valid yet")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if not set(audiences) & set(self.audiences):
            raise TokenInvalid(f"token audiences {audiences} is invalid for the target audiences "
                               f"{list(self.audiences)}")
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict) or not isinstance(private.get("serviceaccount"), dict):
            raise TokenInvalid("the token has no kubernetes.io claims (not a service account token)")
        account = private["serviceaccount"]
        pod = private.get("pod") if isinstance(private.get("pod"), dict) else {}
        result = Claims(namespace=str(private.get("namespace", "")), name=str(account.get("name", "")),
                        uid=str(account.get("uid", "")), audiences=tuple(audiences), expires=expires,
                        issued=issued, pod_name=str(pod.get("name", "")), pod_uid=str(pod.get("uid", "")))
        if claims.get("sub") != result.user or not result.namespace or not result.name:
            raise TokenInvalid("the token's subject does not match its kubernetes.io claims")
        return result
