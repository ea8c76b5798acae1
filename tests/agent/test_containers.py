"""Pod spec + image → ContainerConfig, by Kubernetes' rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.containers import (DEFAULT_CAPS, ContainerConfigError, PodPaths, build_container_config,
                              container_id, expand, restart_of, sandbox_config)
from agent.images.types import Image, ImageConfig
from proto.skiff.v1 import types_pb2


def image(**config) -> Image:
    return Image(id="sha256:" + "ab" * 32, reference="img:1", lower_dirs=config.pop("lower_dirs", ()),
                 config=ImageConfig(**config))


def pod_with(command=(), args=(), env=(), **container) -> tuple[types_pb2.Pod, types_pb2.Container]:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "prod", "uid-1"
    c = pod.spec.containers.add(name="app", image="img:1", **container)
    c.command.extend(command)
    c.args.extend(args)
    for k, v in env:
        c.env.add(name=k, value=v)
    return pod, c


def build(pod, c, img, restart=0, tmp=Path("/tmp/skiff-none")):
    return build_container_config(pod=pod, container=c, image=img, restart=restart,
                                  paths=PodPaths.of(pods_dir=tmp, namespace="prod", name="web", uid="uid-1"),
                                  pids_limit=64, mounts=())


@pytest.mark.parametrize("command,args,want", [
    ((), (), ("/entry", "--flag", "cmd1")),              # neither: Entrypoint + Cmd
    (("/bin/x",), (), ("/bin/x",)),                       # command only: image's both ignored
    ((), ("a1", "a2"), ("/entry", "--flag", "a1", "a2")), # args only: Entrypoint + args
    (("/bin/x",), ("a1",), ("/bin/x", "a1")),              # both
])
def test_command_and_args_against_entrypoint_and_cmd(command, args, want):
    pod, c = pod_with(command, args)
    cfg = build(pod, c, image(entrypoint=("/entry", "--flag"), cmd=("cmd1",)))
    assert cfg.args == want


def test_no_command_anywhere_is_a_create_error():
    pod, c = pod_with()
    with pytest.raises(ContainerConfigError) as exc:
        build(pod, c, image())
    assert exc.value.reason == "CreateContainerError" and "no command" in exc.value.message


def test_env_overrides_image_env_and_expands_references():
    pod, c = pod_with(("echo", "$(GREETING)", "$$(GREETING)", "$(UNSET)"),
                      env=[("MODE", "pod"), ("GREETING", "hello $(MODE)")])
    cfg = build(pod, c, image(env=("MODE=image", "PATH=/bin", "KEEP=1")))
    env = dict(cfg.env)
    assert env == {"MODE": "pod", "PATH": "/bin", "KEEP": "1", "GREETING": "hello pod"}
    assert cfg.args == ("echo", "hello pod", "$(GREETING)", "$(UNSET)")


def test_expand_escapes_like_kubernetes():
    assert expand("a$$b", {}) == "a$b"
    assert expand("$(A)-$(B)", {"A": "1"}) == "1-$(B)"


def test_path_defaults_and_working_dir_falls_back_to_image_then_root():
    pod, c = pod_with(("true",))
    cfg = build(pod, c, image(working_dir="/srv"))
    assert dict(cfg.env)["PATH"].startswith("/usr/local/sbin") and cfg.working_dir == "/srv"
    pod, c = pod_with(("true",), working_dir="/data")
    assert build(pod, c, image(working_dir="/srv")).working_dir == "/data"
    pod, c = pod_with(("true",))
    assert build(pod, c, image()).working_dir == "/"


def test_resources_limits_and_requests():
    pod, c = pod_with(("true",))
    c.resources.limits.update({"cpu": "500m", "memory": "128Mi"})
    cfg = build(pod, c, image())
    assert (cfg.resources.cpu_limit_millis, cfg.resources.cpu_request_millis) == (500, 500)
    assert cfg.resources.memory_limit_bytes == 128 << 20 and cfg.resources.pids_limit == 64
    c.resources.requests["cpu"] = "0.1"
    assert build(pod, c, image()).resources.cpu_request_millis == 100
    sandbox = sandbox_config(pod, pids_limit=64)
    assert sandbox.resources.memory_limit_bytes == 128 << 20 and sandbox.hostname == "web"
    c.resources.limits["memory"] = "12Gigs"
    with pytest.raises(ContainerConfigError, match="12Gigs"):
        build(pod, c, image())


def test_log_path_and_id_carry_the_restart_count(tmp_path):
    pod, c = pod_with(("true",))
    cfg = build(pod, c, image(), restart=3, tmp=tmp_path)
    assert cfg.log_path == tmp_path / "prod_web_uid-1" / "app" / "3.log"
    assert restart_of(cfg.id) == 3 and cfg.id == container_id(pod_uid="uid-1", name="app", restart=3)
    assert container_id(pod_uid="uid-1", name="other", restart=3) != cfg.id


def test_user_from_security_context_and_image(tmp_path):
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n")
    pod, c = pod_with(("true",))
    cfg = build(pod, c, image(user="web", lower_dirs=(layer,)))
    assert (cfg.security.uid, cfg.security.gid) == (1000, 1001)
    pod.spec.security_context.run_as_user = 7
    c.security_context.run_as_group = 8
    cfg = build(pod, c, image(user="web", lower_dirs=(layer,)))
    assert (cfg.security.uid, cfg.security.gid) == (7, 8)
    pod2, c2 = pod_with(("true",))
    with pytest.raises(ContainerConfigError, match="unable to find user nobody"):
        build(pod2, c2, image(user="nobody", lower_dirs=(layer,)))


def test_run_as_non_root_refuses_uid_zero():
    pod, c = pod_with(("true",))
    pod.spec.security_context.run_as_non_root = True
    with pytest.raises(ContainerConfigError) as exc:
        build(pod, c, image())
    assert exc.value.reason == "CreateContainerConfigError"
    assert exc.value.message == ('container has runAsNonRoot and image will run as root '
                                 '(pod: "web_prod(uid-1)", container: app)')
    c.security_context.run_as_user = 1000
    assert build(pod, c, image()).security.uid == 1000


def test_capabilities_add_drop_and_privileged():
    pod, c = pod_with(("true",))
    assert build(pod, c, image()).security.capabilities is None  # Docker's default set
    c.security_context.capabilities.drop.append("NET_RAW")
    c.security_context.capabilities.add.append("SYS_TIME")
    caps = build(pod, c, image()).security.capabilities
    assert "CAP_SYS_TIME" in caps and "CAP_NET_RAW" not in caps and caps > (DEFAULT_CAPS - {"CAP_NET_RAW"})
    c.security_context.capabilities.drop[:] = ["ALL"]
    c.security_context.capabilities.add[:] = ["NET_BIND_SERVICE"]
    assert build(pod, c, image()).security.capabilities == {"CAP_NET_BIND_SERVICE"}
    c.security_context.privileged = True
    sec = build(pod, c, image()).security
    assert sec.privileged and "CAP_SYS_ADMIN" in sec.capabilities and sec.seccomp == "Unconfined"
    assert not sec.no_new_privileges


def test_stop_signal_from_image():
    pod, c = pod_with(("true",))
    assert build(pod, c, image(stop_signal="SIGQUIT")).stop_signal == 3
    assert build(pod, c, image(stop_signal="9")).stop_signal == 9
    assert build(pod, c, image()).stop_signal == 15


def test_qos_class_as_kubernetes():
    from agent.status import qos_class
    pod, c = pod_with(("true",))
    assert qos_class(pod) == "BestEffort"
    c.resources.requests["memory"] = "64Mi"
    assert qos_class(pod) == "Burstable"
    c.resources.limits.update({"memory": "64Mi", "cpu": "1"})
    assert qos_class(pod) == "Guaranteed"
    c.resources.requests["cpu"] = "500m"
    assert qos_class(pod) == "Burstable"
