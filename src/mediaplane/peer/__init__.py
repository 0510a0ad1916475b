"""A Python WebRTC participant (aiortc) for mediasoup transports.

mediasoup speaks ORTC parameters, aiortc speaks SDP. This package translates
both ways with aiortc's own SDP model (`aiortc.sdp`), the way mediasoup-client's
handlers do for browsers: it parses aiortc's local descriptions and renders
the remote ones from mediasoup's transport, producer and consumer parameters.
"""

from mediaplane.peer.participant import MediasoupPeer, PeerSignaling, SfuSignaling
from mediaplane.peer.tracks import PatternVideoTrack, ToneTrack

__all__ = ["MediasoupPeer", "PatternVideoTrack", "PeerSignaling", "SfuSignaling", "ToneTrack"]
