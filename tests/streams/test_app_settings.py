"""The Faust app takes its producer and consumer settings from finpulse's settings (no connection made)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from finpulse.settings import Settings
from finpulse.streams.app import create_app


def test_producer_linger_comes_from_the_kafka_settings(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"kafka": {"producer_linger_s": 0.05, "consumer_group": "linger-test"}, "stream": {"data_dir": str(tmp_path)}}
    )
    app = create_app(settings).app
    assert app.conf.producer_linger == 0.05
    assert app.conf.producer_acks == -1


def test_the_default_linger_is_five_milliseconds() -> None:
    assert Settings().kafka.producer_linger_s == 0.005


AGENTS_BY_ROLE = {
    "news": {"finpulse.score", "finpulse.index"},
    "alerts": {"finpulse.spikes", "finpulse.alerts"},
    "recommend": {"finpulse.recommend.candidates", "finpulse.recommend.clicks", "finpulse.recommend.index"},
}


def _agent_names(app: Any) -> set[str]:
    return {agent.name for agent in app.agents.values()}


@pytest.mark.parametrize("roles", [["news"], ["alerts"], ["recommend"], ["news", "alerts"]])
def test_a_worker_runs_only_the_agents_of_its_roles_in_a_group_of_its_own(tmp_path: Path, roles: list[str]) -> None:
    settings = Settings.model_validate({"kafka": {"consumer_group": "roles"}, "stream": {"data_dir": str(tmp_path), "roles": roles}})
    stream_app = create_app(settings)

    expected = set().union(*(AGENTS_BY_ROLE[role] for role in roles))
    assert _agent_names(stream_app.app) == expected
    assert stream_app.app.conf.id == f"roles-{'-'.join(roles)}"
    assert (stream_app.spike_table is None) == ("alerts" not in roles)


def test_all_roles_keep_the_plain_consumer_group(tmp_path: Path) -> None:
    settings = Settings.model_validate({"kafka": {"consumer_group": "roles"}, "stream": {"data_dir": str(tmp_path)}})
    stream_app = create_app(settings)

    assert _agent_names(stream_app.app) == set().union(*AGENTS_BY_ROLE.values())
    assert stream_app.app.conf.id == "roles"
    # the order the roles are given in does not make another group
    shuffled = settings.model_copy(update={"stream": settings.stream.model_copy(update={"roles": ["recommend", "news"]})})
    assert shuffled.worker_app_id() == "roles-news-recommend"


def test_a_worker_needs_a_known_role() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"stream": {"roles": []}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"stream": {"roles": ["clicks"]}})
