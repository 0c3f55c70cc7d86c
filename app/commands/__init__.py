"""The ``lotlip-search`` sub-commands (parsed and dispatched by :mod:`app.cli`).

One module per command (``index``, ``search``, ``status``/``errors``, ``forget``, ``init``,
``model``, ``demo``, ``finetune``) plus :mod:`app.commands.common` (the context, output and the
one mapping of errors to exit statuses). Commands drive ``app.library`` and ``lotlip`` (and hand
``finetune`` to ``training``); they never import ``app.gui``, and they import torch only when
they embed.
"""
