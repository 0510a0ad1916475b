"""Jobs the control plane runs on media managers.

One lifecycle, one piece of SFU plumbing, and a module per kind.
"""
