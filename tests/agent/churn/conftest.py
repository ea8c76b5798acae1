"""The runtime's and the network's fixtures together, for tests of a whole pod's
kernel footprint (sandbox + network + container)."""
from tests.agent.network.conftest import net, net_factory  # noqa: F401 - fixtures
from tests.agent.runtime.linux.conftest import busybox_layer, runtime  # noqa: F401 - fixtures
