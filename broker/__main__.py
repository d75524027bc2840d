"""Command line of the bundled broker: `python -m broker [CONFIG.toml] [options]`."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from broker.config import SettingsError, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description="Run the bundled MQTT 3.1.1 broker with a client pool that grows on demand.",
    )
    parser.add_argument("config", nargs="?", type=Path,
                        help="broker config in TOML; without it the built-in defaults (the default preset) apply")
    parser.add_argument("--host", help="address to listen on (default: the config's host, else 127.0.0.1)")
    parser.add_argument("--port", type=int,
                        help="TCP port to listen on; 0 lets the operating system pick one (default: the config's port, else 1883)")
    parser.add_argument("--ready-file", type=Path,
                        help="once listening, write the address, PID and startup memory to this file as JSON")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="lowest level of log lines written to stderr (default: INFO)")
    return parser


def print_settings_error(error: SettingsError) -> None:
    """Print each problem of `error` to stderr on its own 'error:' line."""
    for line in str(error).splitlines():
        print(f"error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load the config and run the broker; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr, force=True)

    try:
        config = load_config(args.config)
    except SettingsError as error:
        print_settings_error(error)
        return 2
    for warning in config.warnings:
        logging.getLogger("broker.config").warning("%s", warning)
    if args.host is not None:
        config = replace(config, host=args.host)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            print(f"error: --port is {args.port} but must be between 0 and 65535.", file=sys.stderr)
            return 2
        config = replace(config, port=args.port)

    # Imported after the config loaded, so a bad config fails fast. The baseline RSS below
    # then includes every module the running broker needs.
    from broker.auth import Authorizer
    from broker.rss import current_rss
    from broker.server import StartupError, new_event_loop, run

    try:
        Authorizer(config.access)
    except SettingsError as error:
        print_settings_error(error)
        return 2
    # The event loop exists before the baseline is measured, so importing uvloop and
    # creating its loop count toward the baseline and not toward preheating the pool.
    loop = new_event_loop()
    baseline_rss = current_rss()
    try:
        return run(config, ready_file=args.ready_file, baseline_rss=baseline_rss, loop=loop)
    except StartupError as error:
        logging.getLogger("broker").error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
