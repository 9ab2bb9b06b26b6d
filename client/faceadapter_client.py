"""``python client/faceadapter_client.py ...``: the headless client as a script (same as ``python -m client``)."""
import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a file: import the package from the folder above instead of this one, so the client's
    # module names never shadow the standard library's
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from client.cli import main

    sys.exit(main())
