"""Command-line options every sized benchmark shares: ``--quick``, one option per size, ``--out``."""

import tempfile


def add_size_options(parser, full, quick, name):
    """Adds ``--quick``, ``--<size>`` for each key of ``full`` (an int) and ``--out``."""
    parser.add_argument("--quick", action="store_true", help=f"tiny settings: {quick}")
    for key, value in full.items():
        parser.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {value}")
    parser.add_argument("--out", help=f"path without extension (default docs/benchmarks/{name}; "
                        "with --quick, in the temp directory)")


def resolve_sizes(args, full, quick, name):
    """Fills the sizes left unset from ``quick`` or ``full``, and the default ``--out``."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = (f"{tempfile.gettempdir()}/{name}_quick" if args.quick
                    else f"docs/benchmarks/{name}")
    return args
