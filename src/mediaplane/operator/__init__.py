"""Operator tooling behind the `mediaplane` CLI: a REST client of a running system and
the Rich views of its answers."""
