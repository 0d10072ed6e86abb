"""The ``n3f`` command line: one subcommand per pipeline stage.

Snakemake rules call these subcommands, so each stage is also usable by hand.
Problems the user can fix (:class:`N3FInputError`) print one line naming the
file and the fix and exit with status 2, instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from n3f.errors import N3FInputError


def _command_modules():
    # Imported lazily so that ``n3f --help`` stays fast and a broken optional
    # stage does not stop the others from running.
    from n3f.commands import capture, evaluate, features, fuse, scene, tasks, train

    return [capture, scene, features, train, fuse, evaluate, tasks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="n3f", description=__doc__.splitlines()[0])
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _command_modules():
        module.add_parser(sub)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    # one format for a terminal and a SLURM log: time, module, message
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    try:
        args.func(args)
    except N3FInputError as err:
        print(f"n3f {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
