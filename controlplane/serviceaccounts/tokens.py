"""ServiceAccount tokens: JWTs signed ES256 with the cluster's service-account
key (DATA/pki/sa.key), with Kubernetes' claims, so a token from Skiff reads as
one from kube-apiserver:

    {"iss": ISSUER, "sub": "system:serviceaccount:NS:NAME", "aud": [...],
     "exp": .., "iat": .., "nbf": .., "jti": uuid,
     "kubernetes.io": {"namespace": NS, "serviceaccount": {"name", "uid"},
                       "pod": {"name", "uid"}}}     (pod: a bound token)

Pure: no store; the signer's clock is the one passed in. The JOSE is PyJWT's
(decision 43): `verify` has it check the signature (ES256 only), the issuer,
the times (against the wall clock) and the audience, and returns the claims; the
authenticator (authenticator.py) then checks that the account and the bound
pod still exist with those uids. Every refusal is a `TokenInvalid` with a
one-line reason in Kubernetes' words. The key never appears in a message.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import base64url_encode

from skiff.api.kinds.serviceaccount import username

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION_SECONDS = 600          # Kubernetes' TokenRequest minimum
DEFAULT_EXPIRATION_SECONDS = 3600
_LEEWAY = 60                          # clock skew allowed on exp/nbf/iat, as Kubernetes' jwt validation


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


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """Kubernetes' keyIDFromPublicKey: the SHA-256 of the DER public key, base64url."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64url_encode(hashlib.sha256(der).digest()).decode()


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the service-account signing key must be an EC P-256 private key (ES256)")
    return key


def unverified_subject(token: str) -> str:
    """The `sub` a token claims, unchecked: only to say in a refusal whose token it was."""
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", ""))
    except jwt.InvalidTokenError:
        return ""


class TokenSigner:
    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str = DEFAULT_ISSUER,
                 clock: Callable[[], float] = time.time) -> None:
        self._key, self.issuer, self.clock = key, issuer, clock
        self._kid = key_id(key.public_key())

    def verifier(self, *, audiences: Iterable[str] = ()) -> "TokenVerifier":
        return TokenVerifier(self._key.public_key(), issuer=self.issuer, audiences=audiences)

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
        # typ None: Kubernetes' header is {"alg", "kid"} only (PyJWT would add "typ": "JWT").
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid, "typ": None}), expires


class TokenVerifier:
    """Checks tokens this cluster's key signed, for the API server's audiences.

    PyJWT checks the signature (ES256 only: a token naming another algorithm is
    refused before any key is used), the issuer, the audience and the times
    (exp, nbf, iat, against the wall clock with `_LEEWAY`); `verify` maps its
    exceptions to Kubernetes' one-line reasons."""

    def __init__(self, public: ec.EllipticCurvePublicKey, *, issuer: str = DEFAULT_ISSUER,
                 audiences: Iterable[str] = ()) -> None:
        self._public, self.issuer = public, issuer
        self.audiences = tuple(audiences) or (issuer,)

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and token.startswith("eyJ")

    def verify(self, token: str) -> Claims:
        try:
            claims = jwt.decode(token, self._public, algorithms=["ES256"], audience=list(self.audiences),
                                issuer=self.issuer, leeway=_LEEWAY,
                                # sub: checked below, against the kubernetes.io claims
                                options={"require": ["exp"], "verify_sub": False, "verify_jti": False})
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(self._reason(exc, token)) from None
        audiences = claims["aud"]
        audiences = [audiences] if isinstance(audiences, str) else list(audiences)
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict) or not isinstance(private.get("serviceaccount"), dict):
            raise TokenInvalid("the token has no kubernetes.io claims (not a service account token)")
        account = private["serviceaccount"]
        pod = private.get("pod") if isinstance(private.get("pod"), dict) else {}
        result = Claims(namespace=str(private.get("namespace", "")), name=str(account.get("name", "")),
                        uid=str(account.get("uid", "")), audiences=tuple(audiences), expires=int(claims["exp"]),
                        issued=int(claims.get("iat", 0)), pod_name=str(pod.get("name", "")),
                        pod_uid=str(pod.get("uid", "")))
        if claims.get("sub") != result.user or not result.namespace or not result.name:
            raise TokenInvalid("the token's subject does not match its kubernetes.io claims")
        return result

    def _reason(self, exc: jwt.InvalidTokenError, token: str) -> str:
        """PyJWT's exception as the one-line reason Skiff has always given. Every claim check runs
        after the signature's, so a claim named here is one this cluster's key signed."""
        if isinstance(exc, jwt.InvalidAlgorithmError):
            try:
                alg = jwt.get_unverified_header(token).get("alg")
            except jwt.InvalidTokenError:
                alg = ""
            return f"unsupported token signing algorithm {alg!r}"
        if isinstance(exc, jwt.InvalidSignatureError):
            if len(token.rpartition(".")[2]) != 86:      # not 64 bytes (r || s) in base64url: not ES256's
                return "invalid token signature"
            return "invalid token signature (not signed by this cluster's service-account key)"
        if isinstance(exc, jwt.ExpiredSignatureError):
            return "service account token has expired"
        if isinstance(exc, jwt.ImmatureSignatureError):    # nbf or iat later than now + leeway
            return "service account token is not valid yet"
        claims = jwt.decode(token, options={"verify_signature": False}) \
            if isinstance(exc, (jwt.InvalidIssuerError, jwt.InvalidAudienceError, jwt.MissingRequiredClaimError)) \
            else {}
        if isinstance(exc, jwt.InvalidIssuerError) or \
                isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim == "iss":
            return f"token issuer {claims.get('iss')!r} is not {self.issuer!r}"
        if isinstance(exc, jwt.InvalidAudienceError) or \
                isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim == "aud":
            audiences = claims.get("aud")
            audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
            return f"token audiences {audiences} is invalid for the target audiences {list(self.audiences)}"
        if isinstance(exc, (jwt.MissingRequiredClaimError, jwt.InvalidIssuedAtError)) or \
                isinstance(exc, jwt.DecodeError) and "claim (" in str(exc):    # exp/nbf not a number
            return "the token has no valid exp claim"
        return "the token is not a JWT"
