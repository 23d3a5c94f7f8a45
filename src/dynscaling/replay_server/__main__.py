"""``python -m dynscaling.replay_server --pool FILE ...``."""

import sys

from .cli import main

sys.exit(main())
