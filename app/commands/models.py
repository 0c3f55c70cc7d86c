"""``lotlip-search model ...``: list, download, import, choose and remove models."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.commands.common import (
    EXIT_NO_MODEL,
    EXIT_OK,
    CommandError,
    Context,
    UsageError,
    print_json,
    say,
)

DOWNLOAD_EPILOG = """\
Without internet access on this machine, fetch the two files on another one:
  https://huggingface.co/weiwu-ww/LoTLIP-ViT-B-16-100M/resolve/main/model.pt
  https://huggingface.co/google-bert/bert-base-uncased/resolve/main/vocab.txt
copy them over and run:
  lotlip-search model import model.pt --vocab vocab.txt --name lotlip-vit-b16
The environment variable HF_ENDPOINT selects a Hugging Face mirror."""


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``model`` and its sub-commands."""
    epilog = str(common.pop("epilog", ""))
    model = sub.add_parser(
        "model",
        help="list, download, import and choose models",
        description="Manage the models the library can use. The official LoTLIP models find "
        "real photos; the small bundled lotlip-tiny only knows simple coloured shapes.",
        epilog=epilog,
        **common,
    )
    actions = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    table = (  # name, run, help, description
        ("list", run_list, "installed and available models", None),
        (
            "download",
            run_download,
            "download an official model from the Hugging Face hub",
            "Download an official LoTLIP checkpoint and the BERT vocabulary (with a progress "
            "bar; a dropped connection is resumed, a corrupted file is fetched again) and "
            "install it.",
        ),
        (
            "import",
            run_import,
            "install an official-format checkpoint (.pt) from a file",
            "Convert an open_clip-format LoTLIP checkpoint into the app's format and install "
            "it. The file is read safely (tensors only; pickles that would run code are "
            "refused).",
        ),
        (
            "use",
            run_use,
            "choose the model this library uses",
            "Remember NAME (a model name or folder) as this library's model. `auto` goes back "
            "to the default: the best installed official model, else the bundled one.",
        ),
        (
            "remove",
            run_remove,
            "delete an installed model's files",
            "Delete an imported, downloaded or fine-tuned model from the models folder. The "
            "library keeps its vectors (they are used again if it comes back).",
        ),
    )
    parsers = {}
    for name, run, summary, description in table:
        parsers[name] = actions.add_parser(
            name,
            help=summary,
            description=description,
            epilog=(DOWNLOAD_EPILOG + "\n\n" if name == "download" else "") + epilog,
            formatter_class=common.get("formatter_class"),
        )
        parsers[name].set_defaults(run=run)
    parsers["list"].add_argument("--json", action="store_true", help="print as JSON")
    parsers["download"].add_argument(
        "name", metavar="NAME", help="lotlip-vit-b16 or lotlip-vit-b32"
    )
    parsers["import"].add_argument("file", metavar="FILE", help="the checkpoint (.pt)")
    parsers["import"].add_argument(
        "--vocab",
        metavar="FILE",
        help="the bert-base-uncased vocab.txt (default: next to FILE or in the HF cache)",
    )
    parsers["import"].add_argument(
        "--name",
        metavar="NAME",
        help="name to install it under (default: the file name, or its folder's for model.pt)",
    )
    parsers["import"].add_argument(
        "--replace", action="store_true", help="replace a model of the same name"
    )
    parsers["use"].add_argument("name", metavar="NAME", help="model name, folder, or `auto`")
    parsers["remove"].add_argument("name", metavar="NAME", help="the model to remove")


def model_rows(ctx: Context) -> list[dict[str, object]]:
    """The model list (:func:`app.library.models.list_models`, broken folders included) with
    library vector counts and the model in use."""
    from app.library.models import list_models, resolve_model_spec

    lib = ctx.existing_lib  # listing models needs no library
    vectors = lib.store.counts().embeddings if lib is not None else {}
    in_use, _ = resolve_model_spec(lib, ctx.model)
    rows = []
    for entry in list_models(broken=True):
        size = entry.size_bytes
        row = {
            "name": entry.name,
            "kind": entry.kind,
            "installed": entry.installed,
            "path": entry.path,
            "size_mb": round(size / 1e6, 1) if size is not None else None,
            "vectors": vectors.get(entry.name, 0),
            "in_use": entry.name == in_use,
        }
        rows.append(row | ({"problem": entry.problem} if entry.problem else {}))
    return rows


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    """Print the models."""
    rows = model_rows(ctx)
    if args.json:
        print_json(rows)
        return EXIT_OK
    for r in rows:
        mark = "*" if r["in_use"] else " "
        if r.get("problem"):
            state = f"{r['problem']} (delete it: lotlip-search model remove {r['name']})"
        elif r["installed"]:
            state = f"{r['size_mb']} MB"
        else:
            state = f"not installed (lotlip-search model download {r['name']})"
        vectors = f", {r['vectors']} photos indexed" if r["vectors"] else ""
        say(f"{mark} {r['name']:<20} {r['kind']:<10} {state}{vectors}")
    say("(* = used by this library)")
    return EXIT_OK


def run_download(args: argparse.Namespace, ctx: Context) -> int:
    """Download and install an official model."""
    from app.library.models import ModelImportError, import_model
    from lotlip import registry

    if args.name not in registry.OFFICIAL_MODELS:
        raise UsageError(
            f"{args.name} is not an official model; choose one of "
            + ", ".join(registry.OFFICIAL_MODELS)
        )
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        checkpoint, vocab = registry.download(
            args.name, endpoint=endpoint, progress=sys.stderr.isatty()
        )
    except registry.DownloadError as exc:
        raise CommandError(str(exc)) from None
    say(f"converting {args.name} ...", file=sys.stderr)
    try:
        target = import_model(checkpoint, args.name, vocab, replace=True)
    except ModelImportError as exc:
        raise CommandError(str(exc)) from None
    say(f"installed {args.name} in {target}")
    say("it is used automatically when no other model is chosen (`lotlip-search model use`)")
    return EXIT_OK


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    """Install a checkpoint from a file."""
    from app.library.models import (
        MissingVocabError,
        ModelImportError,
        import_model,
        use_refusal,
    )
    from lotlip.folders import checkpoint_name

    checkpoint = Path(args.file).expanduser()
    if not checkpoint.is_file():
        raise CommandError(f"no such file: {checkpoint}")
    vocab = Path(args.vocab).expanduser() if args.vocab else None
    name = args.name or checkpoint_name(checkpoint)
    lib = ctx.existing_lib  # before the import: a --library that is a file stops it here
    try:
        target = import_model(checkpoint, name, vocab, replace=args.replace)
    except FileExistsError:
        raise CommandError(
            f"a model named {name} is already installed; pass --replace to overwrite it or "
            "--name to choose another name"
        ) from None
    except MissingVocabError:
        raise CommandError(
            "the checkpoint needs the bert-base-uncased vocabulary: pass --vocab vocab.txt "
            "(from https://huggingface.co/google-bert/bert-base-uncased/resolve/main/vocab.txt) "
            "or put vocab.txt next to it"
        ) from None
    except ModelImportError as exc:
        raise CommandError(str(exc)) from None
    say(f"installed {name} in {target}")
    refusal = use_refusal(lib, name)
    say(refusal if refusal else f"use it with: lotlip-search model use {name}")
    return EXIT_OK


def is_available(name: str) -> bool:
    """True when ``name`` (a registry name or a model folder/checkpoint path) can be loaded."""
    from lotlip import registry
    from lotlip.folders import folder_problem

    path = Path(name).expanduser()
    if path.is_file() or (path.is_dir() and not folder_problem(path)):
        return True
    return registry.is_installed(name)


def run_use(args: argparse.Namespace, ctx: Context) -> int:
    """Remember the library's model."""
    from app.library.models import MODEL_SETTING

    store = ctx.lib.store
    if args.name == "auto":
        store.delete_setting(MODEL_SETTING)
        say("this library now uses the best installed model")
        return EXIT_OK
    if not is_available(args.name):
        from lotlip import registry

        broken = {b.name: b.problem for b in registry.broken_models()}
        why = f"is broken: {broken[args.name]}" if args.name in broken else "is not installed"
        raise CommandError(
            f"model {args.name} {why} (see `lotlip-search model list`)", EXIT_NO_MODEL
        )
    path = Path(args.name).expanduser()
    value = str(path.resolve()) if path.exists() else args.name
    store.set_setting(MODEL_SETTING, value)
    say(f"this library now uses {value}")
    return EXIT_OK


def run_remove(args: argparse.Namespace, ctx: Context) -> int:
    """Delete an installed model."""
    from app.library.models import MODEL_SETTING, remove_model

    try:
        remove_model(args.name)
    except ValueError as exc:  # a registry.ModelNotFoundError is mapped by the CLI (status 4)
        raise CommandError(str(exc)) from None
    lib = ctx.existing_lib
    kept = 0
    if lib is not None:
        if lib.store.get_setting(MODEL_SETTING) == args.name and not lib.store.read_only:
            lib.store.delete_setting(MODEL_SETTING)
        kept = lib.store.counts().embeddings.get(args.name, 0)
    say(f"removed {args.name}" + (f" (the library keeps its {kept} vectors)" if kept else ""))
    return EXIT_OK
