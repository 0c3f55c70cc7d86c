"""The photo library on disk, shared by the CLI and the GUI: scanning folders, the SQLite store
(the source of truth) with its captions, the HNSW index per model (a cache), indexing,
searching, saved searches, exporting photos, choosing a model, the demo gallery, and the
one-writer lock.

It imports ``lotlip`` and ``training`` (the demo's scenes) and other ``app.library`` modules,
never ``app.commands`` or ``app.gui``, and never Qt. Nothing here prints: results are values,
progress is a callback, problems are exceptions.
"""
