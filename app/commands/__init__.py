"""The ``lotlip-search`` sub-commands (parsed and dispatched by :mod:`app.cli`)."""
