"""``parity check cfg.py``: the pre-deploy gate. Exit 0 when every stage matches, 1 on a parity
failure, 2 on a usage or configuration error, 3 on a bug in parity itself (130 when interrupted, 128+N
when stopped by signal N); ``--junit-xml`` and ``--json`` write result files CI systems read (on a usage
error too). ``parity snapshot`` records the reference for a check in another environment."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from parity.results.exit import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    from parity import __version__

    parser = argparse.ArgumentParser(prog="parity", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"parity {__version__}")
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="Compare the DALI pipeline with the MMPretrain reference")
    check.add_argument("config", type=Path, help="Parity config file")
    check.add_argument("--reference", type=Path, metavar="DIR",
                       help="Compare against this snapshot (from `parity snapshot`) instead of running MMPretrain")
    check.add_argument("--junit-xml", type=Path, metavar="FILE", help="Write JUnit XML results to FILE")
    check.add_argument("--json", type=Path, metavar="FILE", help="Write every result as JSON to FILE (docs/json.md)")
    check.add_argument("--report", type=Path, metavar="DIR", help="Write the HTML report into DIR")
    check.add_argument("--report-images", type=int, default=50, metavar="N",
                       help="Draw pictures for at most N images, failures first (default 50)")
    check.add_argument("--shard", metavar="K/N", help="Check only shard K of N: images assigned by content hash, so "
                       "an image keeps its shard when others are added (combine the shards with `parity merge`)")
    for flag, what in (("--atol", "absolute tolerance"), ("--rtol", "relative tolerance"),
                       ("--max-mismatch", "share of elements allowed over the element threshold (0..1)")):
        check.add_argument(flag, action="append", default=[], metavar="[STAGE=]VALUE",
                           help=f"Override the {what}: for one stage (resize=2, model_input=0.05), or bare for "
                                "every pixel stage (the model input follows, scaled by the smallest std); repeatable")
    check.add_argument("--strict-gpu", action="store_true",
                       help="Fail on a GPU-only risk in the pipeline graph (docs/gpu.md); by default it is a warning")
    check.add_argument("-q", "--quiet", action="store_true", help="Print only the summary (no line per image, no full messages)")
    check.add_argument("-v", "--verbose", action="count", default=0,
                       help="-v: the full message of each distinct failure; -vv: of every failing image")
    snapshot = sub.add_parser("snapshot", help="Record the MMPretrain reference (every stage, and the reference "
                                               "network's logits) for `parity check --reference`")
    snapshot.add_argument("config", type=Path, help="Parity config file")
    snapshot.add_argument("--out", type=Path, metavar="DIR",
                          help="Snapshot folder to write (default: the config's reference.snapshot)")
    snapshot.add_argument("--shard", metavar="K/N", help="Record only shard K of N (images assigned by content hash, "
                          "as `check --shard`): one snapshot folder per shard, each checked with the same --shard")
    snapshot.add_argument("-q", "--quiet", action="store_true", help="Print only the last line")
    merge = sub.add_parser("merge", help="Combine the result files of N shards (`check --shard K/N --json`) into one "
                                         "verdict, JSON and JUnit XML")
    merge.add_argument("results", type=Path, nargs="+", metavar="RESULT.json", help="Result files of the shards")
    merge.add_argument("--json", type=Path, metavar="FILE", help="Write the combined result file")
    merge.add_argument("--junit-xml", type=Path, metavar="FILE", help="Write the combined JUnit XML")
    merge.add_argument("--report", type=Path, metavar="DIR", help="Write one HTML report from the shards' reports "
                       "(found where each result file says, relative to it)")
    suggest = sub.add_parser("suggest", help="Write the DALI pipeline matching an MMPretrain config, a timm "
                                             "checkpoint or torchvision weights, and verify it")
    suggest.add_argument("config", type=Path, help="Parity config (its reference), an MMPretrain config, "
                                                   "timm::CHECKPOINT or torchvision::WEIGHTS")
    suggest.add_argument("--out", type=Path, default=Path("parity-suggested"), metavar="DIR",
                         help="Folder for the pipeline, its parity config and Triton files (default parity-suggested)")
    suggest.add_argument("--input-format", choices=("BGR", "RGB", "encoded"), default=None,
                         help="What the client sends (default: the parity config's, else BGR)")
    suggest.add_argument("--random-images", type=int, default=0, metavar="N",
                         help="Also verify on N generated images of random sizes (default 0; the verdict always "
                              "covers the samples, extreme sizes and large downscales)")
    suggest.add_argument("--triton", action="store_true", help="Also write model.dali and a dali-backend config.pbtxt")
    return parser


def main(argv=None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed spelled, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _parser().parse_args(argv)
    from importlib import import_module

    from parity.errors import ParityUsageError
    from parity.run.interrupt import Terminated, signals_unwind

    run = import_module(f"parity.cli.{args.command}").run
    try:
        with signals_unwind(), _pipeline_warnings_printed():
            return run(args)
    except ParityUsageError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated as exc:
        print(f"parity: stopped by {exc}; the server and temporary files were cleaned up", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"parity: internal error (a bug in parity, please report it): {type(exc).__name__}: {exc}"
              + ("" if args.debug else " (run with --debug for the traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


@contextlib.contextmanager
def _pipeline_warnings_printed():
    """A config whose pipelines differ is one printed line on the command line, not a Python warning."""
    import warnings

    from parity.errors import ParityPipelineWarning

    shown = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if issubclass(category, ParityPipelineWarning):
            print(f"parity: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ParityPipelineWarning)
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
