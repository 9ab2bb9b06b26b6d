"""``python client/faceadapter_client.py ...``: the headless client as a script (same as ``python -m client``)."""
import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a file: import the package from the folder above, and not this folder's modules as
    # top-level names (they could shadow the standard library's)
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == here:
        sys.path.pop(0)
    sys.path.insert(0, str(here.parent))
    from client.cli import main

    sys.exit(main())
