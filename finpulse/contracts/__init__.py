"""The contracts every room shares: records and labels, click events, topics, codecs, ids.

They sit at the bottom: nothing here imports another finpulse room (import-linter checks it).
"""
