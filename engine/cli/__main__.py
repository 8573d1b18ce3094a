"""``python -m engine.cli COMMAND ...``: the command line without the launcher (child processes use it)."""

import sys

from engine.cli.main import main

sys.exit(main())
