"""Creating and listing the Kafka topics of ``topics.py`` with kafka-python's admin client."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finpulse.contracts.topics import TOPICS, TopicSpec, topic_name
from finpulse.exceptions import FinpulseError
from finpulse.infra.kafka_clients import connection_config
from finpulse.settings import KafkaSettings, Settings

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient

logger = logging.getLogger(__name__)


class TopicAdminError(FinpulseError):
    """The brokers could not be reached or refused to create a topic."""

    exit_code = 4


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int | None
    action: str  # created, exists, present
    spec: TopicSpec | None = None


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection settings for ``kafka``."""
    return connection_config(kafka, "finpulse-admin")


def _admin(kafka: KafkaSettings) -> KafkaAdminClient:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**admin_config(kafka))
    except KafkaError as exc:
        raise TopicAdminError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc!r}") from exc


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> list[TopicState]:
    """Create every topic of ``specs`` under the topic prefix; existing ones are left as they are."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = _admin(settings.kafka)
    try:
        existing = set(admin.list_topics())
        states = []
        for spec in specs:
            name = topic_name(settings.kafka, spec.name)
            if name in existing:
                states.append(TopicState(name, spec.partitions, "exists", spec))
                continue
            try:
                admin.create_topics([NewTopic(name, spec.partitions, -1, topic_configs=spec.configs())])  # -1: broker default
                logger.info("created topic %s (%d partitions, %s)", name, spec.partitions, spec.configs())
                states.append(TopicState(name, spec.partitions, "created", spec))
            except TopicAlreadyExistsError:
                states.append(TopicState(name, spec.partitions, "exists", spec))
            except KafkaError as exc:
                raise TopicAdminError(f"cannot create topic {name}: {exc!r}") from exc
        return states
    finally:
        admin.close()


def list_topics(settings: Settings) -> list[TopicState]:
    """Topics on the brokers under the topic prefix, with their partition counts."""
    from kafka.errors import KafkaError

    admin = _admin(settings.kafka)
    try:
        prefix = settings.kafka.topic_prefix
        names = sorted(n for n in admin.list_topics() if n.startswith(prefix))
        described = admin.describe_topics(names) if names else []
    except KafkaError as exc:
        raise TopicAdminError(f"cannot list topics at {settings.kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        admin.close()
    specs = {topic_name(settings.kafka, s.name): s for s in TOPICS}
    return [
        TopicState(d["name"], len(d.get("partitions") or []), "present", specs.get(d["name"]))
        for d in described
    ]
