"""The room service: see manager.py for how its parts fit together."""

from mediaplane.control.rooms.manager import RoomManager
from mediaplane.control.rooms.peers import LocalPeer, LocalRoom

__all__ = ["LocalPeer", "LocalRoom", "RoomManager"]
