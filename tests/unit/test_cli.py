"""The start-up lines `up` prints: copied by people (a certificate's fingerprint, a path),
so printed whole and verbatim."""

from __future__ import annotations

import pytest

from mediaplane import cli

# A SHA-256 fingerprint with ':CD:' (rich's emoji code for a disc) and '[...]'.
FINGERPRINT = "67:E6:18:86:62:96:CE:17:6D:A8:6A:3E:58:83:EA:D7:E8:FA:C5:E8:44:CD:8B:E1:E3:ED:AF"
DETAIL = f"10.0.0.2 (https, made now: /tmp/{'x' * 200}/cert.pem, SHA-256 {FINGERPRINT}) [red]"


@pytest.mark.parametrize("name", ["control-plane up", "warning"])
def test_a_step_prints_on_one_line_as_it_is(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 80)
    with cli.console.capture() as out:
        assert cli.print_step(name, DETAIL)
    text = out.get()
    assert DETAIL in text, text
    assert text.count("\n") == 1, text


def test_a_step_in_progress_is_not_printed() -> None:
    with cli.console.capture() as out:
        assert not cli.print_step("sfu", "starting the SFU")
    assert out.get() == ""
