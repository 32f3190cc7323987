"""The demo: synthetic traffic with an injected data and concept drift, and the run that `up --demo` drives.

May import the runtime; never `stream.cli` or `stream.bench`.
"""
