"""The client side: `Producer`, `AsyncProducer`, and the listener that brings results
back. Imports the core, wire, metrics and store layers; never the worker.
"""
