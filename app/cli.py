"""``lotlip-search``: index folders of photos and find them again from paragraph descriptions.

The command line face of :mod:`app.library` (the GUI drives the same code). Results go to
stdout, progress bars and warnings to stderr; ``--json`` gives scripts stable output; the exit
status says how it went (:data:`EXIT_CODES_HELP`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from app.commands import demo, finetune, forget, index, info, models, saved, search
from app.commands.common import (
    EXIT_CANCELLED,
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_NO_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    UsageError,
)

__all__ = ["EXIT_CANCELLED", "EXIT_ERROR", "EXIT_NO_MODEL", "EXIT_OK", "EXIT_USAGE", "main"]

logger = logging.getLogger("app.cli")

DESCRIPTION = """\
Find photos from paragraph-long descriptions, on your own machine.

  lotlip-search demo                          see it work (offline, generated scenes)
  lotlip-search index ~/Pictures              index a folder (run again to update)
  lotlip-search search "a long description"   find photos
  lotlip-search model download lotlip-vit-b16 get the real model (800 MB)"""

LIBRARY_HELP = (
    "library folder (default: $LOTLIP_SEARCH_LIBRARY, else the user data folder "
    "lotlip-search/library)"
)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("lotlip-search")
    except Exception:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render the documentation)."""
    common = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": EXIT_CODES_HELP}
    parser = argparse.ArgumentParser(prog="lotlip-search", description=DESCRIPTION, **common)
    parser.add_argument("--library", metavar="DIR", help=LIBRARY_HELP)
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="model name or folder (default: the library's choice, see `model use`)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda", "mps"),
        help="where the model runs (default: auto = CUDA, Apple MPS, else CPU)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    index.add_parser(sub, **common)
    search.add_parser(sub, **common)
    saved.add_parser(sub, **common)
    info.add_parsers(sub, **common)
    forget.add_parser(sub, **common)
    models.add_parser(sub, **common)
    demo.add_parser(sub, **common)
    finetune.add_parser(sub, **common)
    return parser


def _setup_output(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    # paths that are not valid UTF-8 are printed as their original bytes
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="surrogateescape")


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``lotlip-search --help``)."""
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help/--version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "finetune":
        return finetune.run(args, rest)
    if rest:
        parser.error_message = f"unrecognized arguments: {' '.join(rest)}"
        print(parser.format_usage().rstrip(), file=sys.stderr)
        _error(parser.error_message)
        return EXIT_USAGE
    _setup_output(args.verbose)
    ctx = Context(args.library, args.model, args.device, args.verbose)
    try:
        return int(args.run(args, ctx))
    except UsageError as exc:
        print(parser.format_usage().rstrip(), file=sys.stderr)
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:
        return _handle(exc, args.verbose)
    finally:
        ctx.close()


def _handle(exc: Exception, verbose: bool) -> int:
    """Map an exception to a message and an exit status."""
    from app.library.library import LibraryBusyError
    from lotlip import ModelNotFoundError
    from lotlip.devices import DeviceUnavailableError
    from lotlip.transforms import ImageLoadError

    if verbose:
        logger.exception("command failed")
    if isinstance(exc, ModelNotFoundError):
        _error(exc)
        return EXIT_NO_MODEL
    if isinstance(exc, (LibraryBusyError, DeviceUnavailableError, ImageLoadError, OSError)):
        _error(exc)
        return EXIT_ERROR
    _error(f"{type(exc).__name__}: {exc}")
    if not verbose:
        print("(run with -v for details)", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
