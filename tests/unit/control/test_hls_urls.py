from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from mediaplane.control import hls_urls

KEY = "k" * 40


def test_a_signed_url_verifies_until_it_expires() -> None:
    q = dict(parse_qsl(hls_urls.query(KEY, "r", "e" * 16, 60, now=1000)))
    assert q["expires"] == "1060"
    hls_urls.verify(KEY, "r", "e" * 16, 1060, q["sig"], now=1059)
    hls_urls.verify(KEY, "r", "e" * 16, 1060, q["sig"].upper(), now=1000)
    with pytest.raises(hls_urls.SignatureError, match="expired"):
        hls_urls.verify(KEY, "r", "e" * 16, 1060, q["sig"], now=1061)


@pytest.mark.parametrize(
    "change",
    [{"room": "r2"}, {"egress": "f" * 16}, {"expires": 1061}, {"key": "x" * 40}],
)
def test_a_signature_binds_room_egress_expiry_and_key(change: dict[str, object]) -> None:
    sig = hls_urls.sign(KEY, "r", "e" * 16, 1060)
    args = {"key": KEY, "room": "r", "egress": "e" * 16, "expires": 1060} | change
    with pytest.raises(hls_urls.SignatureError, match="invalid"):
        hls_urls.verify(
            str(args["key"]), str(args["room"]), str(args["egress"]), int(args["expires"]),  # type: ignore[call-overload]
            sig, now=0,
        )  # fmt: skip
