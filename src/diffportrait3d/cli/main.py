"""`dp3d` entry point: one subcommand per module, each with `add_parser` and `run`."""

import argparse
import importlib
import logging
import os
import sys

from ..errors import UserError

# subcommand name -> module under diffportrait3d.cli; each module is imported lazily so that
# `dp3d --help` stays fast and a missing optional dependency only breaks its own command.
COMMANDS = {
    "demo": "demo",
    "init": "init_model",
    "render": "render",
    "render-batch": "render_batch",
    "convert-official": "convert_official",
    "train": "train",
    "fetch-weights": "fetch_weights",
    "synth": "synth",
    "evaluate": "evaluate",
    "serve": "serve",
    "align": "align",
    "conditions": "conditions",
    "lift": "lift",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong, where help is) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dp3d", description="DiffPortrait3D: novel views of a portrait.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(f"{__package__}.{module}").add_parser(sub, name)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed: return its status like any other
        return e.code
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # diffusers' and transformers' own warnings (hub retries, "Defaulting to unsafe serialization") would
        # precede and contradict our one-line errors; -v shows them
        for name in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):  # read when they are first imported
            os.environ.setdefault(name, "error")
    try:
        args.func(args)
    except UserError as e:
        print(f"dp3d {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dp3d {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
