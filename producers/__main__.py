"""``python -m producers``: the ``consent-relay`` command line."""

import sys

from producers.cli import main

sys.exit(main())
