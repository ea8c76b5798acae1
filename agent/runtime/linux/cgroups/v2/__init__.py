"""cgroup v2 driver: `CgroupV2Manager` and one small module per controller."""
from agent.runtime.linux.cgroups.v2.manager import CgroupV2Manager

__all__ = ["CgroupV2Manager"]
