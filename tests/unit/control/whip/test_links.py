from __future__ import annotations

import re

from mediaplane.control.whip.links import ice_server_links
from mediaplane.turn.credentials import IceServer

LINK = re.compile(
    r'^<(?P<url>turns?:[^>]+)>; rel="ice-server"; username="(?P<u>[^"]+)"; '
    r'credential="(?P<c>[^"]+)"; credential-type="password"$'
)


def test_one_rfc_9725_link_per_url() -> None:
    server = IceServer(
        urls=["turn:10.0.0.1:3478?transport=udp", "turns:10.0.0.1:443?transport=tcp"],
        username="1700000000:alice",
        credential="abc+/=",
    )
    links = ice_server_links([server])
    assert len(links) == 2
    found = [LINK.match(link) for link in links]
    assert all(found), links
    assert [m.group("url") for m in found if m] == server.urls
    assert {(m.group("u"), m.group("c")) for m in found if m} == {("1700000000:alice", "abc+/=")}
    assert ice_server_links([]) == []
