"""spatial.mesh_topology is data only: importing it loads neither spatial.pose nor the offline
canonical-face derivation (scripts/derive_canonical_face.py), so there is no import circle."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mesh_topology_imports_alone_and_the_runtime_never_loads_the_derivation():
    code = textwrap.dedent("""
        import importlib.util, sys
        # The package object without running its __init__ (which registers every node, and the metrics
        # nodes use spatial.pose): only then does sys.modules show what mesh_topology itself imports.
        spec = importlib.util.spec_from_file_location("faceadapter_suite", "__init__.py",
                                                      submodule_search_locations=["."])
        pack = importlib.util.module_from_spec(spec)
        sys.modules["faceadapter_suite"] = pack
        import faceadapter_suite.spatial.mesh_topology as mt
        print("POSE", "faceadapter_suite.spatial.pose" in sys.modules)
        print("DERIVE", hasattr(mt, "derive_canonical_478"))
        spec.loader.exec_module(pack)  # now the whole pack, as ComfyUI loads it
        import faceadapter_suite.spatial.pose, faceadapter_suite.spatial.projector_mesh  # noqa: E401
        import faceadapter_suite.nodes  # every node module the pack registers
        print("SCRIPTS", sorted(m for m in sys.modules if "derive_canonical" in m))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "POSE False" in result.stdout and "DERIVE False" in result.stdout
    assert "SCRIPTS []" in result.stdout
