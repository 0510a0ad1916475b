"""A real RTSP server for tests: `python -m tests.support.rtsp_server <port> <tone Hz>`.

GStreamer's RTSP server library (Debian gir1.2-gst-rtsp-server-1.0) serving a
live sine tone (Opus) and SMPTE colour bars (VP8) at rtsp://127.0.0.1:<port>/test.
The pipeline is built from numbers only (port and frequency are parsed as such).
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port, freq = int(sys.argv[1]), float(sys.argv[2])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( audiotestsrc is-live=true wave=sine freq={freq:.1f} volume=0.3 ! audioconvert "
        "! audioresample ! audio/x-raw,rate=48000,channels=2 ! opusenc "
        "! rtpopuspay name=pay0 pt=96 "
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 "
        "! videoconvert ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 "
        "! rtpvp8pay name=pay1 pt=97 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
