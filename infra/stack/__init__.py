"""The embedded stack of real servers on loopback: ``finpulse stack up | down | status | logs``.

``Stack(settings.stack).up()`` starts Tansu (Kafka protocol), osmem (Elasticsearch API), PostgreSQL
and Alerta; see ``manager.py``. Nothing is imported or started at import time.
"""
