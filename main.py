"""BatchLab from a checkout: ``python main.py`` opens the window; ``python main.py COMMAND ...`` runs headless.

Installed, the same is the ``batchlab`` command (``batchlab.launcher``).
"""

import sys

from batchlab.launcher import entry

if __name__ == "__main__":
    sys.exit(entry())
