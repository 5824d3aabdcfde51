"""Alert sinks are chosen by name from the registry; each name the settings accept has a plugin."""

from __future__ import annotations

import typing

import pytest

from finpulse.settings import AlertSettings, load_settings
from finpulse.streams.sinks.alert_base import AlertSink
from finpulse.streams.sinks.exceptions import UnknownSinkError
from finpulse.streams.sinks.registry import ALERT_SINKS, alert_sink_class, build_sinks


def test_every_sink_name_the_settings_accept_is_registered() -> None:
    (names,) = typing.get_args(AlertSettings.model_fields["sinks"].annotation)
    assert set(typing.get_args(names)) == set(ALERT_SINKS)
    for name in ALERT_SINKS:
        cls = alert_sink_class(name)
        assert issubclass(cls, AlertSink) and cls.name == name


def test_sinks_are_built_in_the_order_the_settings_name_them() -> None:
    settings = load_settings(alerts={"sinks": ["log", "alerta"]})
    assert [sink.name for sink in build_sinks(settings)] == ["log", "alerta"]


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownSinkError, match="choose from alerta, log"):
        alert_sink_class("pagerduty")
