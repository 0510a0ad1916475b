"""The test suite's own secrets, made once per run and inherited by every process it starts.

The repository's development constants are refused whenever a service binds or announces
a non-loopback address (the network-namespace tests do), so the suite never relies on them:
Settings(env="test") and every subprocess read these from the environment.
"""

from __future__ import annotations

import os
import secrets

for _name in ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET", "TURN_SECRET"):
    os.environ.setdefault(f"MEDIAPLANE_{_name}", f"test-{secrets.token_urlsafe(24)}")
