"""The metrics layer: `Stats` and `Metrics` built from what Redis holds, and the
mergeable histogram behind the percentiles. Pure logic; imports only the core modules.
"""
