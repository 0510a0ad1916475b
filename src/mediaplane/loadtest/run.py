"""Pick the load test's transport and its targets from the settings."""

from __future__ import annotations

from collections.abc import Callable

from mediaplane.loadtest.models import LoadReport, LoadSpec
from mediaplane.operator.rest import OperatorError
from mediaplane.reachability import local_base_url
from mediaplane.settings import Settings
from mediaplane.sfu.errors import SfuError


async def run_loadtest(
    spec: LoadSpec,
    settings: Settings,
    *,
    url: str | None = None,
    sfu_url: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> LoadReport:
    if spec.transport == "rtp":
        from mediaplane.loadtest.rtp_mode import run_rtp

        target = sfu_url or f"ws://{settings.sfu_host}:{settings.sfu_port}/rpc"
        try:
            return await run_rtp(spec, target, settings.secret("sfu_secret"), progress)
        except (OSError, SfuError) as e:
            raise OperatorError(
                f"the SFU at {target} failed: {e}; is `mediaplane up` running?", exit_code=2
            ) from None
    from mediaplane.loadtest.webrtc_mode import run_webrtc

    base = url or local_base_url(settings)
    return await run_webrtc(spec, settings, base, progress)
