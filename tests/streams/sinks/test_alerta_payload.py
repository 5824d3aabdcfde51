from datetime import UTC, datetime

from finpulse.contracts.records import Headline, SpikeAlert
from finpulse.settings import AlertaSettings
from finpulse.streams.sinks.alerta_sink import EVENT, alerta_payload


def _alert(status: str) -> SpikeAlert:
    return SpikeAlert(
        key="XYZ", status=status, window_start=datetime(2026, 11, 2, 9, tzinfo=UTC),
        window_end=datetime(2026, 11, 2, 9, 5, tzinfo=UTC), n=20, k=15, share=0.75, baseline=0.1,
        p_value=1e-9, severity="critical",
        headlines=[Headline(id="a" * 32, title="XYZ plunges <script>", url="https://n/1", negative_score=0.97,
                            published_at=None)],
    )


def test_raise_payload_carries_evidence() -> None:
    body = alerta_payload(_alert("raise"), AlertaSettings(environment="Production", service="finpulse"))
    assert body["resource"] == "XYZ" and body["event"] == EVENT
    assert body["severity"] == "critical"
    assert "XYZ plunges <script>" in body["text"] and "https://n/1" in body["text"]
    assert body["attributes"]["n"] == 20 and body["attributes"]["k"] == 15
    assert body["attributes"]["headlines"][0]["negative_score"] == 0.97


def test_resolve_is_normal_severity() -> None:
    body = alerta_payload(_alert("resolve"), AlertaSettings())
    assert body["severity"] == "normal"
    assert body["resource"] == "XYZ"
