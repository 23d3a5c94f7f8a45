"""``python -m dynscaling.cli``."""

from . import main

main()
