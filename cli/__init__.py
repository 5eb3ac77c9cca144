"""The ``cadkit`` command line (click)."""
