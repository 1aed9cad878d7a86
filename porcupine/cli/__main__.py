"""``python -m porcupine.cli``: the same as the ``porcupine`` command."""

import sys

from porcupine.cli import main

sys.exit(main())
