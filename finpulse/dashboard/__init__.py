"""Trend viewing: Kibana saved objects (``finpulse kibana import``) and the live page (``finpulse dashboard``).

Reusable API: :func:`finpulse.dashboard.kibana.import_saved_objects`,
:func:`finpulse.dashboard.app.serve_dashboard` (a running page with ``.url`` and ``.stop()``).
"""
