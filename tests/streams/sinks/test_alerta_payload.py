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


def _resolve(raised: SpikeAlert | None, resolved_by: str | None, quiet_timeout_s: float | None = None) -> SpikeAlert:
    return SpikeAlert(
        key="XYZ", status="resolve", window_start=datetime(2026, 11, 2, 9, 20, tzinfo=UTC),
        window_end=datetime(2026, 11, 2, 9, 25, tzinfo=UTC), n=0 if resolved_by == "quiet" else 12, k=0, share=0.0,
        baseline=0.1, p_value=1.0, severity="normal", raised=raised,
        resolved_by=resolved_by, quiet_timeout_s=quiet_timeout_s,
    )


def test_a_resolve_keeps_the_raise_evidence_and_adds_its_own_beside_it() -> None:
    raised = _alert("raise")
    raise_body = alerta_payload(raised, AlertaSettings())
    body = alerta_payload(_resolve(raised, "share"), AlertaSettings())
    assert body["severity"] == "normal"
    for name, value in raise_body["attributes"].items():
        assert body["attributes"][name] == value, name
    assert body["attributes"]["resolvedBy"] == "share" and body["attributes"]["resolveN"] == 12
    assert body["text"].startswith(raise_body["text"]) and "Resolved: 0 of 12 articles about XYZ" in body["text"]


def test_a_quiet_resolve_says_it_closed_for_lack_of_articles() -> None:
    body = alerta_payload(_resolve(_alert("raise"), "quiet", 3600.0), AlertaSettings())
    assert body["attributes"]["n"] == 20 and body["attributes"]["quietTimeoutS"] == 3600.0
    assert "quiet timeout" in body["text"] and "60 min" in body["text"] and "back to normal" in body["text"]


def test_a_resolve_without_the_raise_evidence_leaves_the_raise_attributes_alone() -> None:
    body = alerta_payload(_resolve(None, None), AlertaSettings())
    assert not {"n", "k", "headlines"} & set(body["attributes"]), "Alerta merges attributes: the raise's stay"
    assert body["attributes"]["resolveN"] == 12


def test_a_resolve_written_before_the_evidence_fields_still_reads() -> None:
    old = _alert("resolve").model_dump(mode="json", exclude={"raised", "resolved_by", "quiet_timeout_s"})
    again = SpikeAlert.model_validate(old)
    assert again.raised is None and again.resolved_by is None
