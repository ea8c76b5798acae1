"""`skiff config`: the client config's contexts, as kubectl's (skiff/config.py).

    skiff config view                 the file as it is (paths to keys, never their content)
    skiff config get-contexts         CURRENT NAME SERVER AUTHINFO
    skiff config current-context
    skiff config use-context NAME     Switched to context "NAME".

`skiff up` adds a context named after the cluster (--name, default skiff) and
makes it current; a secure cluster's names its CA and the admin's certificate.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skiff.cli._common import CliError
from skiff.config import ConfigError, config_path, load_contexts, use_context


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="show or switch the client config's contexts")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    sub.add_parser("view", help="print the client config").set_defaults(func=view)
    sub.add_parser("get-contexts", help="list the contexts").set_defaults(func=get_contexts)
    sub.add_parser("current-context", help="print the current context").set_defaults(func=current_context)
    u = sub.add_parser("use-context", help="make a context current")
    u.add_argument("name", metavar="NAME")
    u.set_defaults(func=use)


def _path() -> Path:
    return config_path()


def view(_args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"no client config at {_path()} (`skiff up` writes one)") from None
    return 0


def get_contexts(_args: argparse.Namespace) -> int:
    from skiff.api.humanize import format_table
    current, contexts = load_contexts(path=_path())
    rows = [["CURRENT", "NAME", "SERVER", "AUTHINFO"]]
    for name, config in contexts.items():
        rows.append(["*" if name == current else "", name, config.server,
                     Path(config.client_certificate).stem if config.client_certificate else ""])
    sys.stdout.write(format_table(rows))
    return 0


def current_context(_args: argparse.Namespace) -> int:
    current, contexts = load_contexts(path=_path())
    if not current:
        raise CliError("current-context is not set")
    print(current)
    return 0


def use(args: argparse.Namespace) -> int:
    try:
        use_context(path=_path(), name=args.name)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    print(f'Switched to context "{args.name}".')
    return 0
