"""Bootstrap tokens (skiff/bootstraptoken.py, decision 36): kubeadm's format, the Secret's keys,
expiry, the bootstrap signer's detached JWS, and the CA pin's hash."""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from skiff import bootstraptoken as bt
from skiff.pki import CertificateAuthority, ca_cert_hash

T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def test_a_generated_token_has_kubeadms_form_and_splits():
    token = bt.generate()
    assert bt.TOKEN_RE.match(token)
    assert bt.split("abcdef.0123456789abcdef") == ("abcdef", "0123456789abcdef")


@pytest.mark.parametrize("bad", ["abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
                                 "abcdef.0123456789abcde", "abcdef:0123456789abcdef", ""])
def test_a_malformed_token_is_refused_without_echoing_its_secret(bad):
    with pytest.raises(bt.TokenError) as err:
        bt.split(bad)
    assert "[a-z0-9]{6}.[a-z0-9]{16}" in str(err.value)
    if "." in bad:
        assert bad.partition(".")[2] not in str(err.value)


def test_the_secret_round_trips_with_kubernetes_keys():
    token = bt.BootstrapToken("abcdef", "0123456789abcdef", T0 + datetime.timedelta(hours=24), bt.USAGES,
                              (bt.DEFAULT_GROUP,), "for node 2")
    data = bt.secret_data(token)
    assert {k: v.decode() for k, v in data.items()} == {
        "token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-12-02T00:00:00Z",
        "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token", "description": "for node 2"}
    assert bt.from_secret("bootstrap-token-abcdef", bt.SECRET_TYPE, data) == token
    assert token.user == "system:bootstrap:abcdef"


def test_a_secret_not_matching_its_name_or_type_is_no_token():
    data = bt.secret_data(bt.BootstrapToken("abcdef", "0123456789abcdef"))
    with pytest.raises(bt.TokenError, match="does not match its name"):
        bt.from_secret("bootstrap-token-zzzzzz", bt.SECRET_TYPE, data)
    with pytest.raises(bt.TokenError, match="Opaque"):
        bt.from_secret("bootstrap-token-abcdef", "Opaque", data)


def test_expiry():
    token = bt.BootstrapToken("abcdef", "0123456789abcdef", T0)
    assert not token.expired(T0 - datetime.timedelta(seconds=1)) and token.expired(T0)
    assert not bt.BootstrapToken("abcdef", "0123456789abcdef", None).expired(T0 + datetime.timedelta(days=9999))


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
                                          ("0", None)])
def test_ttl_is_a_go_duration(text, seconds):
    got = bt.parse_ttl(text)
    assert (got.total_seconds() if got else None) == seconds


@pytest.mark.parametrize("bad", ["", "24", "1d", "-1h", "h"])
def test_a_bad_ttl_names_itself(bad):
    with pytest.raises(bt.TokenError, match="--ttl"):
        bt.parse_ttl(bad)


def test_extra_groups_must_be_bootstrappers():
    bt.validate_groups([bt.DEFAULT_GROUP])
    with pytest.raises(bt.TokenError, match='"system:masters" must start with "system:bootstrappers:"'):
        bt.validate_groups(["system:masters"])


def test_the_detached_jws_is_hs256_over_the_content_keyed_by_the_token():
    sig = bt.detached_signature("hello", "abcdef", "0123456789abcdef")
    header, payload, mac = sig.split(".")
    assert payload == ""   # detached
    # kubeadm's DetachedTokenIsValid compares strings with its own (go-jose's) output: these exact bytes.
    assert base64.urlsafe_b64decode(header + "==") == b'{"alg":"HS256","kid":"abcdef"}'
    signing_input = f"{header}.{base64.urlsafe_b64encode(b'hello').rstrip(b'=').decode()}".encode()
    expected = hmac.new(b"abcdef.0123456789abcdef", signing_input, hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)) == expected
    assert bt.verify_signature("hello", sig, "abcdef", "0123456789abcdef")
    assert not bt.verify_signature("hello!", sig, "abcdef", "0123456789abcdef")
    assert not bt.verify_signature("hello", sig, "abcdef", "0123456789abcdee")
    assert not bt.verify_signature("hello", f"{header}.{payload}.{mac}x", "abcdef", "0123456789abcdef")
    assert not bt.verify_signature("hello", sig.replace("..", "."), "abcdef", "0123456789abcdef")


def test_a_detached_jws_of_another_form_is_refused():
    """Only kubeadm's form: HS256 with the token's id as kid, over the base64url payload. Not RFC 7797's
    unencoded payload (b64: false), not another token's kid, not another algorithm."""
    key = b"abcdef.0123456789abcdef"

    def jws(header: dict, signing_payload: bytes) -> str:
        h = base64.urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode()).rstrip(b"=")
        mac = hmac.new(key, h + b"." + signing_payload, hashlib.sha256).digest()
        return f"{h.decode()}..{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    encoded = base64.urlsafe_b64encode(b"hello").rstrip(b"=")
    assert bt.verify_signature("hello", jws({"alg": "HS256", "kid": "abcdef"}, encoded), "abcdef", "0123456789abcdef")
    assert not bt.verify_signature("hello", jws({"alg": "HS256", "b64": False, "crit": ["b64"], "kid": "abcdef"},
                                                b"hello"), "abcdef", "0123456789abcdef")
    assert not bt.verify_signature("hello", jws({"alg": "HS256", "kid": "zzzzzz"}, encoded), "abcdef",
                                   "0123456789abcdef")
    assert not bt.verify_signature("hello", jws({"alg": "HS512", "kid": "abcdef"}, encoded), "abcdef",
                                   "0123456789abcdef")


def test_the_ca_hash_is_sha256_of_the_subject_public_key_info():
    ca = CertificateAuthority.create()
    spki = x509.load_pem_x509_certificate(ca.cert_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ca_cert_hash(ca.cert_pem) == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert ca_cert_hash(CertificateAuthority.create().cert_pem) != ca_cert_hash(ca.cert_pem)


def test_cluster_info_kubeconfig_round_trips():
    ca = CertificateAuthority.create()
    text = bt.cluster_info_kubeconfig(server="https://10.0.0.10:6444", ca_pem=ca.cert_pem, api_server="10.0.0.10:6443")
    info = bt.parse_cluster_info_kubeconfig(text)
    assert (info.server, info.api_server, info.ca_pem) == ("https://10.0.0.10:6444", "10.0.0.10:6443", ca.cert_pem)
    with pytest.raises(bt.TokenError, match="not usable"):
        bt.parse_cluster_info_kubeconfig("clusters: []")
