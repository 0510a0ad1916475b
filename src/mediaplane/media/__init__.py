"""The media manager: a REST job API over GStreamer worker processes (docs/media-manager.md)."""
