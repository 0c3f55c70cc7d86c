"""``lotlip-search``: index folders of photos and find them again from paragraph descriptions.

The command line face of :mod:`app.library` (the GUI drives the same code). Results go to
stdout, progress bars and warnings to stderr; ``--json`` gives scripts stable output; the exit
status says how it went (:data:`EXIT_CODES_HELP`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from app.commands import demo, finetune, forget, index, init, models, saved, search, status
from app.commands.common import (
    ACCESS_CREATE,
    ACCESS_INIT,
    ACCESS_OPTIONAL,
    ACCESS_READ,
    ACCESS_WRITE,
    EXIT_CANCELLED,
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_NO_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    PRECISION_CHOICES,
    Context,
    UsageError,
    describe_error,
    error_json,
    print_json,
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


LIBRARY_ACCESS = {
    "index": ACCESS_CREATE,
    "demo": ACCESS_CREATE,
    "init": ACCESS_INIT,
    "forget": ACCESS_WRITE,
    "model use": ACCESS_WRITE,
    "model list": ACCESS_OPTIONAL,
    "model remove": ACCESS_OPTIONAL,
}
"""What each command needs of the library (the rest only read an existing one)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (with its own usage line) instead of exiting.

    Every parser, sub-commands included, records its usage in the parsed arguments
    (``args.usage_of``): the innermost one wins, so a check made after parsing can print the
    usage of the command it belongs to.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(usage_of=self.format_usage)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, usage=self.format_usage())


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render the documentation)."""
    common = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": EXIT_CODES_HELP}
    parser = ArgumentParser(prog="lotlip-search", description=DESCRIPTION, **common)
    parser.add_argument("--library", metavar="DIR", help=LIBRARY_HELP)
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="model name or folder (default: the library's choice, see `model use`)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        help="where the model runs (default: the library's setting, which the app's Settings "
        "change, else auto = CUDA, Apple MPS, else CPU)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        help="numeric precision of the model (default: the library's setting, else auto = "
        "fp16 on GPUs, bf16 on CPUs with native bfloat16, else fp32; int8 is CPU-only and "
        "opt-in). Vectors made at one precision stay searchable at another.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (index, search, saved, status, forget, models, demo, init, finetune):
        command.add_parser(sub, **common)  # in this order in --help
    return parser


class _Formatter(logging.Formatter):
    """``warning: message``, like the CLI's own warnings (the log format only with -v)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (main() may run more than once)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _setup_output(verbose: bool) -> None:
    handler = _StderrHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_Formatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # paths that are not valid UTF-8 are printed as their original bytes
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="surrogateescape")


def _command_name(args: argparse.Namespace) -> str:
    sub = getattr(args, "model_command", None)
    return f"{args.command} {sub}" if args.command == "model" and sub else str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``lotlip-search --help``).

    Every failure ends in one ``error:`` line on stderr (and, with ``--json``, an error object
    on stdout) and a documented exit status; a closed pipe (``| head``) ends it quietly.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        exit_status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    return exit_status


def _silence_stdout() -> None:
    """After the reader of stdout went away: send what is left nowhere, quietly."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    wants_json = "--json" in argv
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command != "finetune" and rest:
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}", args.usage_of())
    except UsageError as exc:
        return _fail(EXIT_USAGE, str(exc), exc.usage, wants_json)
    except SystemExit as exc:  # --help or --version
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "finetune":
        return finetune.run(args, rest)
    _setup_output(args.verbose)
    wants_json = bool(getattr(args, "json", False))
    name = _command_name(args)
    ctx = Context(
        args.library,
        args.model,
        args.device,
        args.verbose,
        access=LIBRARY_ACCESS.get(name, ACCESS_READ),
        command=name,
        precision=args.precision,
    )
    try:
        return int(args.run(args, ctx))
    except KeyboardInterrupt:
        message = "interrupted: run the same command again to continue"
        print(file=sys.stderr)
        return _fail(EXIT_CANCELLED, message, None, wants_json)
    except BrokenPipeError:
        raise
    except Exception as exc:
        if args.verbose:
            logger.exception("command failed")
        message, exit_status = describe_error(exc, ctx.directory)
        usage = None
        if exit_status == EXIT_USAGE:
            usage = getattr(exc, "usage", None) or args.usage_of()
        return _fail(exit_status, message, usage, wants_json)
    finally:
        ctx.close()


def _fail(status: int, message: str, usage: str | None, wants_json: bool) -> int:
    """Report a failure: usage (for usage errors) and ``error: ...`` on stderr, JSON on stdout."""
    if usage:
        print(usage.rstrip(), file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    if wants_json:
        print_json(error_json(message, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
