"""Capability names and Kubernetes' add/drop rules (pure logic)."""
from __future__ import annotations

import pytest

from agent.runtime.linux.security import ALL_CAPABILITIES, CAPABILITIES, DEFAULT_CAPABILITIES, cap_name, \
    effective_capabilities
from agent.runtime.linux.security.capabilities import mask_of, names_of


def test_names_and_numbers_cover_every_capability_through_checkpoint_restore():
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_NET_BIND_SERVICE"] == 10
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(CAPABILITIES.values()) == list(range(41))


def test_docker_default_set_is_docker_s_well_known_mask():
    # `docker run busybox grep CapEff /proc/self/status` prints 00000000a80425fb.
    assert mask_of(DEFAULT_CAPABILITIES) == 0xA80425FB
    assert names_of(0xA80425FB) == DEFAULT_CAPABILITIES


@pytest.mark.parametrize("spelling", ["NET_RAW", "net_raw", "CAP_NET_RAW", " Net_Raw "])
def test_manifest_spellings(spelling):
    assert cap_name(spelling) == "CAP_NET_RAW"


def test_unknown_capability_is_an_error_naming_it():
    with pytest.raises(ValueError, match="NET_TELEPORT"):
        effective_capabilities(add=["NET_TELEPORT"])


def test_kubernetes_add_drop_rules():
    assert effective_capabilities() == DEFAULT_CAPABILITIES
    assert effective_capabilities(privileged=True, drop=["ALL"]) == ALL_CAPABILITIES
    assert effective_capabilities(drop=["ALL"]) == frozenset()
    assert effective_capabilities(drop=["ALL"], add=["NET_BIND_SERVICE"]) == {"CAP_NET_BIND_SERVICE"}
    assert effective_capabilities(add=["SYS_TIME"]) == DEFAULT_CAPABILITIES | {"CAP_SYS_TIME"}
    assert effective_capabilities(drop=["NET_RAW", "MKNOD"]) == DEFAULT_CAPABILITIES - {"CAP_NET_RAW", "CAP_MKNOD"}
    assert effective_capabilities(add=["ALL"], drop=["SYS_ADMIN"]) == ALL_CAPABILITIES - {"CAP_SYS_ADMIN"}
    assert effective_capabilities(add=["ALL"], drop=["ALL"]) == frozenset()     # drop ALL wins
    assert effective_capabilities(add=["NET_ADMIN"], drop=["NET_ADMIN"]) == DEFAULT_CAPABILITIES


def test_check_security_config_names_the_bad_field():
    from agent.runtime.interface import SecurityConfig
    from agent.runtime.linux.security import check_security_config

    check_security_config(SecurityConfig())
    check_security_config(SecurityConfig(uid=1000, gid=1000), ambient=frozenset({"NET_BIND_SERVICE"}))
    bad = [
        (SecurityConfig(seccomp="localhost/x.json"), frozenset(), "seccompProfile"),
        (SecurityConfig(capabilities=frozenset({"CAP_FLY"})), frozenset(), "capabilities"),
        (SecurityConfig(uid=-1), frozenset(), "uid"),
        (SecurityConfig(supplemental_gids=(5, 2**32)), frozenset(), "supplemental_gids"),
        (SecurityConfig(capabilities=frozenset()), frozenset({"NET_RAW"}), "ambient"),
    ]
    for cfg, ambient, field in bad:
        with pytest.raises(ValueError, match=field):
            check_security_config(cfg, ambient=ambient)
