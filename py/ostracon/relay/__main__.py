"""``python -m ostracon.relay``: the same as ``ostracon relay``."""

import argparse
import sys

from .cli import add_relay_arguments, main_relay


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m ostracon.relay", description="Run the Ostracon relay.")
    add_relay_arguments(parser)
    return main_relay(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
