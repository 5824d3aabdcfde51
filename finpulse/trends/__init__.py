"""Trend viewing: Kibana saved objects (``finpulse kibana import``) and the live page (``finpulse dashboard``).

Reusable API: :func:`finpulse.trends.kibana.import_saved_objects`,
:func:`finpulse.trends.dashboard.serve_dashboard` (a running page with ``.url`` and ``.stop()``).
"""
