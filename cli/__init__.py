"""The ``lqz`` command-line interface."""
