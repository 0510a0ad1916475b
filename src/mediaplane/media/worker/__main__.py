"""`python -m mediaplane.media.worker <config.json>` (media/process.py spawns it)."""

import sys

from mediaplane.media.worker.main import main

sys.exit(main())
