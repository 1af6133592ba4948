"""`python -m cips3d` runs the command line."""

import sys

from cips3d.cli.main import main

sys.exit(main())
