"""``python -m offnet.cli`` runs the command line (handy with torchrun)."""

import sys

from . import main

sys.exit(main())
