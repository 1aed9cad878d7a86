"""``python -m porcupine.cli``: the same as the ``porcupine`` command."""

from porcupine.cli import entry

entry()
