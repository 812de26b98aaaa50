"""``python -m yolostream.demo [OUT] ...``: the same as ``yolostream demo``."""

import sys

from yolostream.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
