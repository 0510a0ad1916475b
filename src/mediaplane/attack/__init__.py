"""`./mediaplane attack`: issue 17's attack suite against your own running deployment.

Each check is a module of its own (`CHECKS` in run.py) that attacks the system over its
public interfaces with nothing but the URL and an admin token the operator gives, and
returns a `CheckResult`. The suite refuses targets that are not this machine (or that
the operator does not say are theirs): it is for testing your own deployment.
"""
