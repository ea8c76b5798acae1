"""A pod's dnsPolicy, dnsConfig and subdomain: Kubernetes' custom-dns example is taken without a
warning, bad values are refused with the field path and Kubernetes' words."""
from __future__ import annotations

import pytest

from skiff.api import kinds, manifest

S = kinds.kind_named("Pod").strategy

# pods/custom-dns.yaml of the Kubernetes docs ("Pod's DNS Config")
CUSTOM_DNS = """\
apiVersion: v1
kind: Pod
metadata:
  namespace: default
  name: dns-example
spec:
  containers:
    - name: test
      image: nginx
  dnsPolicy: "None"
  dnsConfig:
    nameservers:
      - 192.0.2.1 # this is an example
    searches:
      - ns1.svc.cluster-domain.example
      - my.dns.search.suffix
    options:
      - name: ndots
        value: "2"
      - name: edns0
"""


def _doc(text: str):
    (doc,) = manifest.parse_text(text, source="pod.yaml")
    return doc


def test_the_docs_custom_dns_pod_parses_without_warnings():
    doc = _doc(CUSTOM_DNS)
    assert doc.ok, [str(e) for e in doc.errors]
    assert S.warnings(S.defaults(doc.obj)) == []


def test_hostname_subdomain_and_service_links_are_implemented():
    doc = _doc(CUSTOM_DNS.replace('  dnsPolicy: "None"\n', "  hostname: db-0\n  subdomain: db\n"
                                  "  enableServiceLinks: true\n  dnsPolicy: ClusterFirstWithHostNet\n"))
    assert doc.ok, [str(e) for e in doc.errors]
    assert S.warnings(S.defaults(doc.obj)) == []


@pytest.mark.parametrize("old, new, path, words", [
    ('dnsPolicy: "None"', "dnsPolicy: Cluster", "spec.dnsPolicy", 'Unsupported value: "Cluster"'),
    ("      - 192.0.2.1 # this is an example\n", "      - not-an-ip\n", "spec.dnsConfig.nameservers[0]",
     "must be a valid IP address"),
    ("      - 192.0.2.1 # this is an example\n", "      - 192.0.2.1\n" * 4, "spec.dnsConfig.nameservers",
     "more than 3 nameservers"),
    ("      - my.dns.search.suffix\n", "      - My_Suffix\n", "spec.dnsConfig.searches[1]", "RFC 1123 subdomain"),
    ("      - name: edns0\n", "      - value: x\n", "spec.dnsConfig.options[1].name", "must not be empty"),
    ("    nameservers:\n      - 192.0.2.1 # this is an example\n", "", "spec.dnsConfig.nameservers",
     "at least one DNS nameserver"),
    ('dnsPolicy: "None"', 'dnsPolicy: "None"\n  subdomain: Not_A_Label', "spec.subdomain", "RFC 1123 label"),
])
def test_bad_dns_settings_are_refused_with_the_field_path(old, new, path, words):
    text = CUSTOM_DNS.replace(old, new)
    assert text != CUSTOM_DNS
    errors = [(e.path, e.message) for e in _doc(text).errors]
    assert any(p == path and words in m for p, m in errors), errors


def test_policy_none_without_dns_config_is_refused():
    text = CUSTOM_DNS.split("  dnsConfig:")[0]
    errors = [(e.path, e.message) for e in _doc(text).errors]
    assert ("spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None") in errors
