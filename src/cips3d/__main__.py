"""`python -m cips3d` runs the command line."""

import sys

from cips3d.cli.entry import main

sys.exit(main())
