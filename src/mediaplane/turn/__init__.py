"""TURN for clients behind firewalls that block UDP (docs/networking.md#turn-and-ice-tcp):
coturn as a child process (server.py), its TLS certificate (cert.py), and the time-limited
credentials participants get (credentials.py)."""
