"""The Services' environment variables, as kubelet sets them (envvars.FromServices)."""
from __future__ import annotations

from fractions import Fraction

from agent.dns.view import Port, ServiceInfo
from agent.envvars import EnvContext, container_env, service_env
from proto.skiff.v1 import types_pb2

KUBERNETES = ServiceInfo("default", "kubernetes", cluster_ips=("10.96.0.1",), ports=(Port("https", "TCP", 443),))
MY_SVC = ServiceInfo("shop", "my-svc", cluster_ips=("10.96.0.20",),
                     ports=(Port("", "TCP", 80), Port("dns-udp", "UDP", 53)))
HEADLESS = ServiceInfo("shop", "db", cluster_ips=("None",), ports=(Port("pg", "TCP", 5432),))
EXTERNAL = ServiceInfo("shop", "search", type="ExternalName", external_name="search.example.com")
OTHER_NS = ServiceInfo("elsewhere", "cache", cluster_ips=("10.96.0.30",), ports=(Port("", "TCP", 6379),))
ALL = [KUBERNETES, MY_SVC, HEADLESS, EXTERNAL, OTHER_NS]


def test_a_services_variables_with_docker_links():
    env = service_env(ALL, namespace="shop", enable_service_links=True)
    assert {k: v for k, v in env.items() if k.startswith("MY_SVC_")} == {
        "MY_SVC_SERVICE_HOST": "10.96.0.20",
        "MY_SVC_SERVICE_PORT": "80",
        "MY_SVC_SERVICE_PORT_DNS_UDP": "53",
        "MY_SVC_PORT": "tcp://10.96.0.20:80",
        "MY_SVC_PORT_80_TCP": "tcp://10.96.0.20:80",
        "MY_SVC_PORT_80_TCP_PROTO": "tcp",
        "MY_SVC_PORT_80_TCP_PORT": "80",
        "MY_SVC_PORT_80_TCP_ADDR": "10.96.0.20",
        "MY_SVC_PORT_53_UDP": "udp://10.96.0.20:53",
        "MY_SVC_PORT_53_UDP_PROTO": "udp",
        "MY_SVC_PORT_53_UDP_PORT": "53",
        "MY_SVC_PORT_53_UDP_ADDR": "10.96.0.20",
    }


def test_only_the_pods_namespace_plus_kubernetes_and_never_headless_or_external_names():
    env = service_env(ALL, namespace="shop", enable_service_links=True)
    prefixes = {k.split("_SERVICE_HOST")[0] for k in env if k.endswith("_SERVICE_HOST")}
    assert prefixes == {"KUBERNETES", "MY_SVC"}
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"


def test_enable_service_links_false_keeps_only_the_kubernetes_service():
    env = service_env(ALL, namespace="shop", enable_service_links=False)
    assert {k for k in env if k.endswith("_SERVICE_HOST")} == {"KUBERNETES_SERVICE_HOST"}


def test_a_pods_own_kubernetes_service_in_default_is_the_one():
    env = service_env(ALL, namespace="default", enable_service_links=True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_service_variables_are_visible_to_expansion_and_overridden_by_env():
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "shop"
    c = pod.spec.containers.add(name="c")
    c.env.add(name="URL", value="http://$(MY_SVC_SERVICE_HOST):$(MY_SVC_SERVICE_PORT)/")
    c.env.add(name="MY_SVC_SERVICE_PORT", value="8080")
    ctx = EnvContext(lookup=lambda *a: None, allocatable=(Fraction(1), 1),
                     service_env=service_env(ALL, namespace="shop", enable_service_links=True))
    variables = container_env(pod, c, ctx).variables
    assert variables["URL"] == "http://10.96.0.20:80/"
    assert variables["MY_SVC_SERVICE_PORT"] == "8080"
    assert variables["MY_SVC_PORT_80_TCP_ADDR"] == "10.96.0.20"
