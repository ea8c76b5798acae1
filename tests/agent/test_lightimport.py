"""agent.lightimport: a package's submodules without its __init__, the whole package on demand.

Each test runs in a fresh interpreter: what is in sys.modules is the point.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True,
                          capture_output=True, text=True, timeout=120).stdout


def test_the_agents_network_module_skips_pyroute2s_package_init():
    out = run("import sys, agent.network\n"
              "print(sorted(m for m in ('pyroute2.ndb', 'pyroute2.ipdb', 'sqlite3') if m in sys.modules))")
    assert out.strip() == "[]"


def test_submodules_work_and_the_package_init_runs_when_its_own_names_are_asked_for():
    out = run("import sys\n"
              "from agent.lightimport import package\n"
              "package('pyroute2')\n"
              "from pyroute2.iproute.linux import IPRoute\n"
              "from pyroute2 import config\n"  # a submodule through the package: no init
              "print('ndb' in sys.modules or 'pyroute2.ndb' in sys.modules)\n"
              "from pyroute2 import NDB, IPRoute as Whole\n"  # a name of the package's own: init runs
              "import pyroute2\n"
              "print('pyroute2.ndb' in sys.modules, Whole is IPRoute, pyroute2.NDB is NDB)\n"
              "try:\n"
              "    pyroute2.no_such_name\n"
              "except AttributeError:\n"
              "    print('AttributeError')\n")
    assert out.split() == ["False", "True", "True", "True", "AttributeError"]


def test_a_package_already_imported_whole_is_returned_as_is():
    out = run("import prometheus_client\n"
              "from agent.lightimport import package\n"
              "print(package('prometheus_client') is prometheus_client, hasattr(prometheus_client, 'generate_latest'))")
    assert out.split() == ["True", "True"]
