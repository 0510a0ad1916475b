"""RTP inputs, shared by the kinds that receive from the SFU (record, stream, composite).

    udpsrc (RTP) + udpsrc (RTCP) -> rtpbin (one session per input) -> depay -> [parse]
        -> <the kind's downstream elements>

Each input's udpsrcs bind any free port (reported in `ready` / `input-added`);
a probe reports its first packet, another relays its depayloader's key-frame
requests as `keyframe-wanted`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mediaplane.media.worker.codecs import DEPAY, PARSE
from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import Gst, add, chain, make
from mediaplane.wire.media import FirstPacket, KeyframeWanted, Ports, RtpStream

KEYFRAME_INTERVAL_S = 1.0  # at most one key frame request per video input per second

ELEMENTS = ("udpsrc", "rtpbin", "queue", *DEPAY.values(), *PARSE.values())
"""Every element an RTP input may make (the kind's downstream elements aside)."""


@dataclass
class RtpInput:
    elements: list[Gst.Element]  # the udpsrcs first, then depay and the branch
    rtpbin_pads: list[Gst.Pad]


def _unlinked_latency(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    """Answer latency queries for an input whose RTP has not arrived yet.

    The depayloader is linked to rtpbin only when the first packet of its session
    comes in; until then a latency query through it would fail, and an aggregator
    downstream (compositor, audiomixer, flvmux) whose query fails is not live: it
    waits for data on every pad and produces nothing.
    """
    query = info.get_query()
    if query is not None and query.type == Gst.QueryType.LATENCY and pad.get_peer() is None:
        query.set_latency(True, 0, Gst.CLOCK_TIME_NONE)
        return Gst.PadProbeReturn.HANDLED
    return Gst.PadProbeReturn.OK


class RtpInputs:
    """The RTP inputs of one pipeline and their rtpbin (made with the first input)."""

    def __init__(self, pipeline: Gst.Pipeline, listen_ip: str) -> None:
        self.pipeline = pipeline
        self.listen_ip = listen_ip
        self.rtpbin: Gst.Element | None = None
        self.sessions: list[str] = []  # input name per rtpbin session ("" once removed)
        self.udpsrcs: dict[str, tuple[Gst.Element, Gst.Element]] = {}
        self.sink_for: dict[str, Gst.Element] = {}  # session index -> its depayloader
        self.seen: set[str] = set()  # inputs that had a packet
        self.keyframe_asked: dict[str, float] = {}  # input -> monotonic time of the last ask

    def ensure_rtpbin(self) -> Gst.Element:
        if self.rtpbin is None:
            # latency: the jitter buffer; RTCP sender reports give A/V sync.
            self.rtpbin = make("rtpbin", latency=200, drop_on_latency=False)
            self.pipeline.add(self.rtpbin)
            self.rtpbin.connect("pad-added", self._on_rtpbin_pad)
        return self.rtpbin

    def add(
        self,
        name: str,
        stream: RtpStream,
        downstream: list[Gst.Element],
        *,
        wait_for_keyframe: bool = False,
    ) -> RtpInput:
        rtpbin = self.ensure_rtpbin()
        index = len(self.sessions)
        self.sessions.append(name)
        caps = Gst.Caps.from_string(
            f"application/x-rtp,media={stream.kind},clock-rate={stream.clock_rate},"
            f"encoding-name={stream.encoding_name},payload={stream.payload_type}"
        )
        rtp = make("udpsrc", address=self.listen_ip, port=0, caps=caps)
        rtcp = make("udpsrc", address=self.listen_ip, port=0)
        add(self.pipeline, rtp, rtcp)
        pads = [
            rtpbin.request_pad_simple(f"recv_rtp_sink_{index}"),
            rtpbin.request_pad_simple(f"recv_rtcp_sink_{index}"),
        ]
        rtp.get_static_pad("src").link(pads[0])
        rtcp.get_static_pad("src").link(pads[1])
        self.udpsrcs[name] = (rtp, rtcp)
        rtp.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._first_packet, name)
        depay = make(DEPAY[stream.encoding_name])
        if stream.kind == "video":
            # After a loss the picture is broken until the next key frame, and a browser
            # sends one only when asked. The depayloader notices the gap and asks upstream
            # (GstForceKeyUnit); nothing here sends RTCP to the SFU, so the probe relays it
            # to the manager as `keyframe-wanted` and the control plane asks the SFU.
            # `wait_for_keyframe` (a composite, whose requests the control plane relays):
            # the broken frames are dropped until the key frame, a still picture rather
            # than a smeared one. Without a relay that would freeze the picture until
            # the encoder's own next key frame (aiortc: 100 s), so it is asked for.
            depay.set_property("request-keyframe", True)
            depay.set_property("wait-for-keyframe", wait_for_keyframe)
            depay.get_static_pad("sink").add_probe(
                Gst.PadProbeType.EVENT_UPSTREAM, self._keyframe_wanted, name
            )
        elements = [depay]
        if stream.encoding_name in PARSE:
            elements.append(make(PARSE[stream.encoding_name]))
        chain(self.pipeline, *elements, *downstream)
        depay.get_static_pad("sink").add_probe(Gst.PadProbeType.QUERY_UPSTREAM, _unlinked_latency)
        self.sink_for[str(index)] = depay
        return RtpInput([rtp, rtcp, *elements, *downstream], pads)

    def remove(self, name: str, made: RtpInput) -> None:
        """Take an input out of the playing pipeline (sources first: nothing new flows in)."""
        for e in made.elements:
            e.set_state(Gst.State.NULL)
        assert self.rtpbin is not None
        for pad in made.rtpbin_pads:
            self.rtpbin.release_request_pad(pad)
        for e in made.elements:
            self.pipeline.remove(e)
        self.udpsrcs.pop(name, None)
        index = self.sessions.index(name) if name in self.sessions else -1
        if index >= 0:
            self.sessions[index] = ""
            self.sink_for.pop(str(index), None)

    def port_of(self, name: str) -> Ports:
        rtp, rtcp = self.udpsrcs[name]
        return Ports(rtp=rtp.get_property("port"), rtcp=rtcp.get_property("port"))

    def ports(self) -> dict[str, Ports]:
        return {name: self.port_of(name) for name in self.udpsrcs}

    def counts(self) -> tuple[int, int]:
        """(packets received, packets lost) over every input, from rtpbin's sessions."""
        received = lost = 0
        if self.rtpbin is not None:
            for i in range(len(self.sessions)):
                session = self.rtpbin.emit("get-internal-session", i)
                if session is None:
                    continue
                stats = session.get_property("stats")
                sources = stats.get_value("source-stats") if stats else None
                for s in sources or []:
                    if s.get_value("internal"):
                        continue
                    received += int(s.get_value("packets-received") or 0)
                    lost += max(0, int(s.get_value("packets-lost") or 0))
        return received, lost

    def end_unlinked(self) -> None:
        """A stream that never sent a packet has no rtpbin pad, so the sources' EOS
        cannot reach its branch: end that branch directly, or the muxer would wait
        for it forever."""
        for depay in self.sink_for.values():
            sink = depay.get_static_pad("sink")
            if not sink.is_linked():
                sink.send_event(Gst.Event.new_eos())

    def _on_rtpbin_pad(self, _bin: Gst.Element, pad: Gst.Pad) -> None:
        name = pad.get_name()  # recv_rtp_src_<session>_<ssrc>_<pt>
        if not name.startswith("recv_rtp_src_"):
            return
        session = name.split("_")[3]
        target = self.sink_for.get(session)
        if target is None:
            return
        sink = target.get_static_pad("sink")
        if sink.is_linked():
            # A new SSRC on the same session (a republish): switch to it.
            peer = sink.get_peer()
            if peer is not None:
                peer.unlink(sink)
        pad.link(sink)

    def _keyframe_wanted(
        self, _pad: Gst.Pad, info: Gst.PadProbeInfo, name: str
    ) -> Gst.PadProbeReturn:
        event = info.get_event()
        structure = event.get_structure() if event is not None else None
        if structure is not None and structure.get_name() == "GstForceKeyUnit":
            now = time.monotonic()
            # One request per KEYFRAME_INTERVAL_S at most: the SFU relays each as a PLI,
            # and a key frame is several times the size of a delta frame.
            if now - self.keyframe_asked.get(name, -KEYFRAME_INTERVAL_S) >= KEYFRAME_INTERVAL_S:
                self.keyframe_asked[name] = now
                emit(KeyframeWanted(input=name))
        return Gst.PadProbeReturn.OK

    def _first_packet(
        self, _pad: Gst.Pad, _info: Gst.PadProbeInfo, name: str
    ) -> Gst.PadProbeReturn:
        self.seen.add(name)
        emit(FirstPacket(stream=name, at=time.time()))
        return Gst.PadProbeReturn.REMOVE
