"""finpulse: real-time financial-news intelligence.

Importing this package does nothing else: no settings are read, no server is contacted,
no model is loaded.
"""

__version__ = "0.1.0"
