"""``python -m batchlab``: the same as the ``batchlab`` command."""

import sys

from batchlab.launcher import entry

sys.exit(entry())
