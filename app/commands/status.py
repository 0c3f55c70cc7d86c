"""``lotlip-search status`` and ``lotlip-search errors``: what the library holds."""

from __future__ import annotations

import argparse
import os

from app.commands.common import EXIT_NO_MODEL, EXIT_OK, CommandError, Context, print_json, say


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``status`` and ``errors``."""
    commands = (
        (
            "status",
            "what the library holds: folders, photos, models",
            "Show the library folder, its folders and photo counts, the vectors per model, "
            "failures, and which model searches would use.",
            run_status,
        ),
        (
            "errors",
            "files that could not be indexed, with the reason",
            "List the files that could not be indexed and why. They are retried automatically "
            "once they change (size or modification time).",
            run_errors,
        ),
    )
    for name, summary, description, run in commands:
        p = sub.add_parser(name, help=summary, description=description, **common)
        p.add_argument("--json", action="store_true", help="print as JSON")
        p.set_defaults(run=run)


def status_data(ctx: Context) -> dict[str, object]:
    """Everything ``status`` shows, as a dictionary."""
    from app.commands.models import is_available
    from app.library.models import resolve_model_spec

    lib = ctx.lib  # a mistyped --library is named before a missing --model
    if ctx.model and not is_available(ctx.model):
        raise CommandError(
            f"model {ctx.model} is not installed (see `lotlip-search model list`)", EXIT_NO_MODEL
        )
    store = lib.store
    counts = store.counts()
    spec, source = resolve_model_spec(lib, ctx.model)
    db = lib.dir / "library.db"
    folders = [
        {
            "path": f.path,
            "images": f.photos,
            "failures": f.failures,
            "pending": f.pending,
            "excludes": list(f.excludes),
            "exists": os.path.isdir(f.path),
            "online": f.online,
        }
        for f in lib.folder_status()
    ]
    return {
        "library": str(lib.dir),
        "database_bytes": db.stat().st_size if db.exists() else 0,
        "model": spec,
        "model_source": source,
        "read_only": store.read_only,
        "folders": folders,
        "images": counts.images,
        "failures": counts.failures,
        "pending": store.pending_count(),
        "offline": sum(not f["online"] for f in folders),
        "captions": counts.captions,
        "embeddings": counts.embeddings,
    }


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    """Print the library's status."""
    data = status_data(ctx)
    if args.json:
        print_json(data)
        return EXIT_OK
    read_only = "  (read-only: search works, indexing does not)" if data["read_only"] else ""
    say(f"Library:  {data['library']}{read_only}")
    source = data["model_source"]
    if source == "bundled":
        source = "bundled; the small demo model, it knows simple shapes only"
    say(f"Model:    {data['model']} ({source})")
    folders = data["folders"]
    assert isinstance(folders, list)
    if not folders:
        say("Folders:  none yet (add one with `lotlip-search index FOLDER`)")
    else:
        say(f"Folders:  {len(folders)}")
        for f in folders:
            offline = "" if f["online"] else "  [offline: unplugged drive? its photos are kept]"
            failed = f", {f['failures']} failed" if f["failures"] else ""
            pending = f", {f['pending']} not indexed yet" if f["pending"] else ""
            say(f"  {f['path']}  {f['images']} photos{failed}{pending}{offline}")
            if f["excludes"]:  # --exclude patterns and paths inside it that were forgotten
                say(f"    excluded: {', '.join(f['excludes'])}")
    say(f"Photos:   {data['images']}")
    embeddings = data["embeddings"]
    assert isinstance(embeddings, dict)
    if embeddings:
        listed = ", ".join(f"{name}: {n}" for name, n in sorted(embeddings.items()))
        say(f"Vectors:  {listed}")
    if data["failures"]:
        say(f"Failed:   {data['failures']} (see `lotlip-search errors`)")
    if data["pending"]:
        say(f"Pending:  {data['pending']} seen but not indexed yet (`lotlip-search index` goes on)")
    return EXIT_OK


def run_errors(args: argparse.Namespace, ctx: Context) -> int:
    """List failed files."""
    failures = ctx.lib.store.failures()
    if args.json:
        print_json(
            [
                {"path": f.path, "reason": f.reason, "size": f.size, "failed_at": f.failed_at}
                for f in failures
            ]
        )
        return EXIT_OK
    if not failures:
        say("No failed files.")
        return EXIT_OK
    for f in failures:
        say(f"{f.path}\n    {f.reason}")
    say(
        f"{len(failures)} file(s) could not be indexed; the next `index` retries them once they "
        "change (unreadable files and folders: every run)."
    )
    return EXIT_OK
