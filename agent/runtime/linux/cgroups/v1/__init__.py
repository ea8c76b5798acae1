"""cgroup v1 driver: `CgroupV1Manager` and one small module per controller."""
from agent.runtime.linux.cgroups.v1.manager import CgroupV1Manager

__all__ = ["CgroupV1Manager"]
