"""The worker's connections checked when they are made (url_guard's rule, at connect time).

The control plane refuses a URL whose host is not allowed before it asks for a job,
but GStreamer then connects on its own: it resolves the name again (a DNS answer may
have changed: rebinding), follows HTTP and RTSP redirects, and an HLS playlist names
further hosts for its variants and segments (hlsdemux2 fetches them with libsoup, no
element to look at). So the worker installs two process-wide GIO hooks, through
which every connection of souphttpsrc, hlsdemux2, rtspsrc and rtmp2src/rtmp2sink goes:

- a proxy resolver (`ProxyGuard`), asked for every connection with its host and port
  before it is made: an address (in the URL, or after a redirect) or `localhost` that
  the policy refuses fails the connection there;
- a name resolver (`ResolverGuard`): a name resolves only when every address it
  resolves to is allowed, and those very addresses are what the connection then uses
  (no second lookup to swap them).

Elements that do not connect through GIO (rtmpsrc's librtmp, curlhttpsrc,
neonhttpsrc) are ranked out so uridecodebin never picks them. The checks cost one
lookup per connection, as GStreamer's own would.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any
from urllib.parse import urlsplit

from mediaplane.media.worker.gst import GLib, Gst
from mediaplane.url_guard import (
    DEFAULT_PORTS,
    REFUSED,
    IPAddress,
    OutboundPolicy,
    is_localhost_name,
    literal_address,
    resolve,
)

from gi.repository import Gio, GObject  # isort: skip  (after gst.py required the versions)

log = logging.getLogger(__name__)

# What a job says when a remote source or target failed, whatever failed: the
# pipeline's own words ("Unauthorized", "Not Found", "This appears to be a text
# file") would tell the caller what listens behind a port. The media manager's log
# has them (PipelineError.detail).
REMOTE_SOURCE_FAILED = (
    "cannot play the source: it is unreachable or not allowed, refused the connection or "
    "the request, sent nothing playable, or stopped (the media manager's log says which)"
)
REMOTE_TARGET_FAILED = (
    "cannot stream to the RTMP target: it is unreachable or not allowed, refused the "
    "connection or the stream, or ended it (the media manager's log says which)"
)
BYPASSING_ELEMENTS = ("rtmpsrc", "rtmpsink", "curlhttpsrc", "curlhttpsink", "neonhttpsrc")

_results: dict[str, Any] = {}
_keys = itertools.count()


def _refusal() -> GLib.Error:
    return GLib.Error.new_literal(
        Gio.io_error_quark(), REFUSED, int(Gio.IOErrorEnum.PERMISSION_DENIED)
    )


def _task(source: GObject.Object, cancellable: Any, callback: Any, compute: Any) -> None:
    """Complete an async GIO call at once with `compute()` (or its GLib.Error)."""
    task = Gio.Task.new(source, cancellable, lambda src, res, _data: callback(src, res), None)
    key = f"mediaplane-{next(_keys)}"
    task.set_name(key)
    try:
        _results[key] = compute()
    except GLib.Error as e:
        task.return_error(e)
        return
    task.return_boolean(True)


def _finish(result: Gio.Task) -> Any:
    result.propagate_boolean()  # raises the task's error
    return _results.pop(result.get_name())


class ProxyGuard(GObject.Object, Gio.ProxyResolver):  # type: ignore[misc]
    """Every connection asks here first: `direct://` when allowed, an error otherwise."""

    policy = OutboundPolicy()

    def check(self, uri: str) -> list[str]:
        try:
            parts = urlsplit(uri)
            host, port = parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            host, port = "", 0
        literal = literal_address(host)
        if not host or literal is not None or is_localhost_name(host):
            found: list[IPAddress] = [literal] if literal is not None else resolve(host, port)
            if not found or not all(self.policy.allows(host, a, port) for a in found):
                log.warning("refused a connection to %s:%s", host, port)
                raise _refusal()
        return ["direct://"]  # a name: ResolverGuard checks what it resolves to

    def do_is_supported(self) -> bool:
        return True

    def do_lookup(self, uri: str, _cancellable: Any) -> list[str]:
        return self.check(uri)

    def do_lookup_async(self, uri: str, cancellable: Any, callback: Any, *_data: Any) -> None:
        _task(self, cancellable, callback, lambda: self.check(uri))

    def do_lookup_finish(self, result: Gio.Task) -> list[str]:
        found: list[str] = _finish(result)
        return found


class ResolverGuard(Gio.Resolver):  # type: ignore[misc]
    """Names resolve only to allowed addresses (the port is not known here: an entry
    with a port allows its address for this check; ProxyGuard checked the port)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__()
        self.policy = policy

    def lookup(self, host: str) -> list[Gio.InetAddress]:
        found = resolve(host, 0)
        if not found or not all(self.policy.allows(host, a, None) for a in found):
            log.warning("refused to resolve %s", host)
            raise _refusal()
        return [Gio.InetAddress.new_from_string(str(a)) for a in found]

    def do_lookup_by_name(self, host: str, _cancellable: Any) -> list[Gio.InetAddress]:
        return self.lookup(host)

    def do_lookup_by_name_with_flags(
        self, host: str, _flags: Any, _cancellable: Any
    ) -> list[Gio.InetAddress]:
        return self.lookup(host)

    def do_lookup_by_name_async(
        self, host: str, cancellable: Any, callback: Any, *_data: Any
    ) -> None:
        _task(self, cancellable, callback, lambda: self.lookup(host))

    def do_lookup_by_name_finish(self, result: Gio.Task) -> list[Gio.InetAddress]:
        found: list[Gio.InetAddress] = _finish(result)
        return found

    def do_lookup_by_name_with_flags_async(
        self, host: str, _flags: Any, cancellable: Any, callback: Any, *_data: Any
    ) -> None:
        _task(self, cancellable, callback, lambda: self.lookup(host))

    def do_lookup_by_name_with_flags_finish(self, result: Gio.Task) -> list[Gio.InetAddress]:
        found: list[Gio.InetAddress] = _finish(result)
        return found


def install(allow: list[str]) -> None:
    """Before any element connects: the two hooks and the ranks (once per process)."""
    policy = OutboundPolicy.of(allow)
    ProxyGuard.policy = policy
    Gio.Resolver.set_default(ResolverGuard(policy))
    # GIO registers its extension points with its modules; ours then outranks them all.
    Gio.Vfs.get_default()
    GObject.type_register(ProxyGuard)
    Gio.io_extension_point_implement(
        "gio-proxy-resolver", ProxyGuard.__gtype__, "mediaplane-outbound-guard", 1_000_000
    )
    if not isinstance(Gio.ProxyResolver.get_default(), ProxyGuard):
        raise RuntimeError("the outbound connection guard could not be installed")
    registry = Gst.Registry.get()
    for name in BYPASSING_ELEMENTS:
        feature = registry.lookup_feature(name)
        if feature is not None:
            feature.set_rank(Gst.Rank.NONE)
