"""Metrics (Prometheus), logs (text or JSON) and their HTTP endpoints, shared by the services."""
