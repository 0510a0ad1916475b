"""GStreamer for the worker: initialised once, elements made by factory name, linked in chains.

Imported only by the worker process and the element checks (it initialises GStreamer).
The worker's modules take `Gst` and `GLib` from here, so the version is always required
before the first import.
"""

from __future__ import annotations

import itertools
from typing import Any

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

Gst.init(None)

__all__ = ["GLib", "Gst", "add", "caps", "chain", "link", "make", "missing_elements", "queue"]


def make(factory: str, name: str | None = None, **props: Any) -> Gst.Element:
    """An element with its properties (`async_` -> `async`, `max_size_time` -> `max-size-time`)."""
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise RuntimeError(f"GStreamer element {factory!r} is missing")
    for key, value in props.items():
        element.set_property(key.rstrip("_").replace("_", "-"), value)
    return element


def caps(text: str) -> Gst.Caps:
    return Gst.Caps.from_string(text)


def queue(leaky: bool = False) -> Gst.Element:
    q = make("queue", max_size_time=3 * Gst.SECOND, max_size_buffers=0, max_size_bytes=0)
    if leaky:
        q.set_property("leaky", 2)  # downstream: drop the oldest rather than block a live source
    return q


def link(*elements: Gst.Element) -> None:
    """Link each element to the next, or say which pair would not."""
    for a, b in itertools.pairwise(elements):
        if not a.link(b):
            raise RuntimeError(f"cannot link {a.get_name()} to {b.get_name()}")


def add(bin_: Gst.Bin, *elements: Gst.Element) -> None:
    for e in elements:
        bin_.add(e)


def chain(bin_: Gst.Bin, *elements: Gst.Element) -> None:
    """Add the elements to `bin_` and link them in order."""
    add(bin_, *elements)
    link(*elements)


def missing_elements(names: list[str]) -> list[str]:
    """The element factories among `names` that are not installed."""
    return [n for n in names if Gst.ElementFactory.find(n) is None]
