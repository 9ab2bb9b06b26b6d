"""``python -m client ...`` from the pack folder."""
import sys

from .cli import main

sys.exit(main())
