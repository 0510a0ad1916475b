"""The attack tool's own rules: only your own targets; forged tokens never verify."""

from __future__ import annotations

import pytest
from rich.console import Console

from mediaplane.attack.auth_matrix import forged
from mediaplane.attack.models import AttackReport, CheckResult
from mediaplane.attack.run import CHECKS, table
from mediaplane.attack.scope import OutOfScope, check_scope
from mediaplane.control.auth import Grants, TokenError, mint_token, verify_token


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "https://localhost:8080", "http://[::1]:1"]
)
def test_this_machine_is_in_scope(url: str) -> None:
    check_scope(url, owned=False)


@pytest.mark.parametrize("url", ["http://192.0.2.10:8080", "https://8.8.8.8/"])
def test_other_machines_need_own(url: str) -> None:
    with pytest.raises(OutOfScope, match="your own deployment"):
        check_scope(url, owned=False)
    check_scope(url, owned=True)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http://"])
def test_not_a_control_plane_url(url: str) -> None:
    with pytest.raises(OutOfScope):
        check_scope(url, owned=True)


def test_forged_tokens_never_verify() -> None:
    secret = "s" * 40
    admin = mint_token(api_key="k", api_secret=secret, identity="a",
                       grants=Grants(room_list=True))  # fmt: skip
    assert verify_token(admin, {"k": secret}).grants.room_list
    kinds = forged(admin)
    assert len(kinds) == 8
    for kind, tok in kinds.items():
        with pytest.raises(TokenError):
            verify_token(tok, {"k": secret})
        assert tok != admin, kind


def test_table_says_what_failed() -> None:
    report = AttackReport(target="http://127.0.0.1:1", results=[
        CheckResult(name="caps", passed=True, detail="refused at 5"),
        CheckResult(name="open join", passed=False, detail="anyone gets a token"),
    ])  # fmt: skip
    console = Console(record=True, width=150)
    console.print(table(report))
    text = console.export_text()
    assert "FAILED" in text and "held" in text and "anyone gets a token" in text
    assert not report.passed
    assert len({name for name, _ in CHECKS}) == len(CHECKS) == 10
