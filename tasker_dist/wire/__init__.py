"""The wire layer: what travels through Redis, and nothing that talks to it.

Task and result envelopes, the value codec, signed frames, shipping callables, task ids
and size limits. Imports only the core modules (``tasker_dist.errors`` and friends).
"""
