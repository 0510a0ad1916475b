"""Every Redis key mediaplane uses, in one place (documented in docs/redis-keys.md).

Redis holds the authoritative shared state of the control plane; several
control-plane instances read and write it and fan events out over pub/sub.
Names are `mp:` + a type + ids. Room names and peer ids are validated
(`wire.ids.NAME_PATTERN`) before they reach a key, so no id can forge another key.
"""

from __future__ import annotations

PREFIX = "mp"


def rooms() -> str:
    """set: names of every room that exists."""
    return f"{PREFIX}:rooms"


def room(name: str) -> str:
    """hash: a room's settings and placement (RoomRecord fields)."""
    return f"{PREFIX}:room:{name}"


def room_peers(name: str) -> str:
    """hash: peer id -> PeerRecord JSON, the participants of a room."""
    return f"{PREFIX}:room:{name}:peers"


def room_producers(name: str) -> str:
    """hash: producer id -> ProducerRecord JSON, the published tracks of a room."""
    return f"{PREFIX}:room:{name}:producers"


def room_events(name: str) -> str:
    """pub/sub channel: a RoomEvent (wire/room_events.py) as JSON for every change in a room."""
    return f"{PREFIX}:room:{name}:events"


def room_pipes(name: str) -> str:
    """hash: `{producer id}>{router id}` -> id of that producer piped into that router
    (a room spanning several routers, one per worker, joined by pipeToRouter)."""
    return f"{PREFIX}:room:{name}:pipes"


def room_lock(name: str) -> str:
    """string with TTL: held while one instance places or releases a room's router."""
    return f"{PREFIX}:room:{name}:lock"


def room_peer_media(name: str, peer_id: str) -> str:
    """hash: the SFU objects of a resumable (signaling) peer, so any instance can adopt it:
    `transport:{id}` -> "send" | "recv", `consumer:{id}` -> the room's producer id,
    `caps` -> its RTP capabilities JSON (docs/signaling.md#resuming-a-session)."""
    return f"{PREFIX}:room:{name}:peer:{peer_id}:media"


def resume_token(token_hash: str) -> str:
    """string with TTL: ResumeRecord JSON under the SHA-256 (hex) of a resume token;
    the token itself is never stored."""
    return f"{PREFIX}:resume:{token_hash}"


def instance(instance_id: str) -> str:
    """string with TTL: heartbeat of a live control-plane instance."""
    return f"{PREFIX}:instance:{instance_id}"


def control_events() -> str:
    """pub/sub channel: system-wide events (SFU worker died, instance up/down)."""
    return f"{PREFIX}:events"


def sfu_nodes() -> str:
    """set: ids of SFU nodes that registered and were not yet found down."""
    return f"{PREFIX}:sfu:nodes"


def sfu_node(node_id: str) -> str:
    """string with TTL: SfuNodeRecord JSON, the node's heartbeat (RPC URL and load)."""
    return f"{PREFIX}:sfu:node:{node_id}"


def sfu_node_rooms(node_id: str) -> str:
    """set: rooms placed on an SFU node (the placement count of the least-loaded choice)."""
    return f"{PREFIX}:sfu:node:{node_id}:rooms"


def sfu_nodes_down() -> str:
    """sorted set: SFU node ids found down, scored by when (written by the first instance)."""
    return f"{PREFIX}:sfu:nodes:down"


def media_managers() -> str:
    """set: ids of media managers that registered and were not yet found down."""
    return f"{PREFIX}:media:managers"


def media_manager(manager_id: str) -> str:
    """string with TTL: MediaManagerRecord JSON, the manager's heartbeat (URL, capacity, load)."""
    return f"{PREFIX}:media:manager:{manager_id}"


def media_manager_jobs(manager_id: str) -> str:
    """set: ids of the jobs the control plane placed on a media manager."""
    return f"{PREFIX}:media:manager:{manager_id}:jobs"


def media_managers_down() -> str:
    """sorted set: media manager ids found down, scored by when."""
    return f"{PREFIX}:media:managers:down"


def media_job(job_id: str) -> str:
    """string: MediaJobPlacement JSON, which manager runs a job (and why it failed if it died)."""
    return f"{PREFIX}:media:job:{job_id}"
