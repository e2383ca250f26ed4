"""The ``retrograd`` command (``retrograd.cli.main:main``)."""
