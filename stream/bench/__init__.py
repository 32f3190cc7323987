"""The end-to-end benchmark (`driftwarden bench`, `make bench`): the raw ceiling, the naive Faust pipeline and
Driftwarden on one broker, plus the in-process stage pass.

May import everything but `stream.cli`.
"""
