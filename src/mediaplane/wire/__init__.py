"""Types shared by every process: ids and names, and the messages that cross a process.

`ids` holds the names and ids (room, identity, job ids) and `Json`, defined once.
Messages that cross a process (room events, media-manager jobs and events, SFU
notifications) live in modules beside it, one per channel.
Wire convention: JSON field names are camelCase on every channel that a browser
or the SFU speaks (signaling, SFU RPC, and the Redis room events, which are
forwarded to browsers as they are), snake_case on our own Python-to-Python
channels (the media manager's REST API); docs/architecture.md says which is which.
"""
