"""`mediaplane loadtest`: publishers and subscribers against a running system, reporting
join latency, packet loss, jitter and CPU (like LiveKit's load tester).

Two transports: `rtp` (plain RTP on the running SFU, through its RPC: cheap enough to
reach the SFU's limits from the same machine) and `webrtc` (aiortc participants through
the control plane's signaling: the whole path, a few dozen peers at most in Python).
"""
