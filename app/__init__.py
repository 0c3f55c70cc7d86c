"""LoTLIP Search, the application: ``lotlip-search`` (:mod:`app.cli`) and ``lotlip-search-gui``.

Sub-packages: ``app.library`` (the photo library on disk, Qt-free), ``app.commands`` (one
module per CLI command), ``app.gui`` (the desktop app); :mod:`app.bulk_index` indexes a large
library across several GPUs. The app imports ``lotlip`` and ``training``; neither imports it.
"""
