"""`skiff`: the command line of a Skiff cluster. Wiring only.

Each command lives in its own module exposing `register(subparsers)`, which
adds its subparser and sets `func(args) -> exit code`. This module builds the
parser from those modules, runs the chosen command, and turns every failure
into one line on stderr with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from skiff.cli.errors import CliError
from skiff.config import DEFAULT_SERVER, ConfigError

# Order is the order of `skiff --help`.
COMMAND_MODULES = (
    "apply", "diff", "get", "describe", "delete", "label", "patch", "edit", "api_resources",
    "explain", "create", "expose", "scale", "autoscale", "rollout", "set", "logs", "exec", "attach", "port_forward", "run", "wait", "top", "build", "image",
    "up",
    "node", "taint", "drain", "status", "auth", "certificate", "token", "join", "config", "version",
)


# Words that select a module other than their own name.
_MODULE_OF = {"images": "image", "down": "up", "annotate": "label", "api-resources": "api_resources",
             "cordon": "taint", "uncordon": "taint",
             "port-forward": "port_forward"}


def _command_word(argv: Sequence[str]) -> str | None:
    """The command the user typed (`skiff --server X get pods` -> "get")."""
    words = iter(argv)
    for word in words:
        if word == "--server":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skiff",
        description="Manage a Skiff cluster: apply manifests, inspect and delete objects, "
                    "run and exec into pods, build images, start the all-in-one cluster.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  skiff up --detach                      start etcd, the control plane and a node here\n"
               "  skiff apply -f manifests/examples/hello.yaml\n"
               "  skiff get pods -o wide                 skiff logs hello\n"
               "  skiff run web --image my-web -p 5000:5000\n"
               "  skiff exec -it web -- sh               skiff delete pod web\n"
               "  skiff down --purge\n\n"
               "The control plane is found from --server, else $SKIFF_SERVER, else the config\n"
               f"that `skiff up` writes (~/.skiff/config, or $SKIFF_CONFIG), else {DEFAULT_SERVER}.")
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="the control plane's API address")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen command's module is imported when it is known: `skiff build`
    # and `skiff image` then start without loading gRPC (~0.2 s of a cached build).
    for name in (only,) if only in COMMAND_MODULES else COMMAND_MODULES:
        module_name = f"skiff.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise SystemExit(f"skiff: the command module {module_name} is missing from this installation")
        module.register(subparsers)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; `args.trailing` holds the words after `--`."""
    argv = list(argv)
    # Everything after the first `--` is a command line for a container
    # (`exec POD -- CMD`, `run NAME --image I -- CMD`); argparse cannot mix a
    # greedy positional with options that come after it, so split it off here.
    trailing: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, trailing = argv[:at], argv[at + 1:]
    word = _command_word(argv)
    parser = build_parser(only=_MODULE_OF.get(word, word))
    args = parser.parse_args(argv)
    if trailing and not getattr(args, "takes_command", False):
        parser.error(f"`skiff {args.command}` takes no command after --")
    args.trailing = trailing
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `skiff get pods | head`: the reader left; not an error worth a message.
        sys.stderr.close()
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line; SKIFF_DEBUG=1 shows the traceback
        client = sys.modules.get("skiff.client")  # loaded by every command that talks to the API
        if client is not None and isinstance(exc, client.ApiError):
            from skiff.cli._common import describe_api_error
            print(f"error: {describe_api_error(exc)}", file=sys.stderr)
            return 1
        if os.environ.get("SKIFF_DEBUG"):
            raise
        print(f"error: internal error in `skiff {args.command}`: {type(exc).__name__}: {exc} "
              "(set SKIFF_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
