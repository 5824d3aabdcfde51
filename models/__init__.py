"""Training and evaluation of finpulse's models (torch; the ``train`` extra).

Nothing heavy is imported here: torch and transformers are imported inside the functions that need them.
"""
