"""Settings: environment parsing, env files, secret masking and one clear error per bad value."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from finpulse.exceptions import SettingsError
from finpulse.logs import JsonFormatter
from finpulse.settings import (
    KafkaSecurityProtocol,
    Settings,
    child_process_env,
    load_settings,
    settings_table,
    settings_to_env,
)

SECRET = "hunter2-very-secret-value"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FINPULSE_ variable from the outer environment and no .finpulse/stack.env in the working dir."""
    import os

    for name in list(os.environ):
        if name.startswith("FINPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_env(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# parsing


def test_defaults_without_environment() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.security_protocol is KafkaSecurityProtocol.PLAINTEXT
    assert s.model.providers == ["cuda", "cpu"]
    assert s.spike.window_s == 300.0


def test_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_KAFKA__BOOTSTRAP_SERVERS", " kafka-1:9092, kafka-2:9093 ")
    monkeypatch.setenv("FINPULSE_ELASTICSEARCH__URL", "https://es:9200/")
    monkeypatch.setenv("FINPULSE_SPIKE__ALPHA", "0.01")
    monkeypatch.setenv("FINPULSE_STREAM__WEB_PORT", "7000")
    monkeypatch.setenv("FINPULSE_LOG_JSON", "true")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9093"
    assert s.kafka.broker_list() == ["kafka-1:9092", "kafka-2:9093"]
    assert s.elasticsearch.url == "https://es:9200"
    assert s.spike.alpha == 0.01
    assert s.stream.web_port == 7000
    assert s.log_json is True


def test_lists_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_MODEL__PROVIDERS", '["cpu"]')
    monkeypatch.setenv("FINPULSE_SCRAPE__FEEDS", '["https://a.example/rss", "https://b.example/atom"]')
    monkeypatch.setenv("FINPULSE_ALERTS__SINKS", '["log"]')
    s = load_settings()
    assert s.model.providers == ["cpu"]
    assert s.scrape.feeds == ["https://a.example/rss", "https://b.example/atom"]
    assert s.alerts.sinks == ["log"]


def test_sasl_ssl_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FINPULSE_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("FINPULSE_KAFKA__SASL_PASSWORD", SECRET)
    s = load_settings()
    assert s.kafka.sasl_password is not None and s.kafka.sasl_password.get_secret_value() == SECRET


def test_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="ERROR").log_level == "ERROR"


# ---------------------------------------------------------------------------------------------------------------------
# env files


def test_env_file_is_loaded(tmp_path: Path) -> None:
    env = write_env(
        tmp_path / "custom.env",
        FINPULSE_KAFKA__BOOTSTRAP_SERVERS="file-broker:9092",
        FINPULSE_MODEL__PROVIDERS='["cpu"]',
    )
    s = load_settings(env)
    assert s.kafka.bootstrap_servers == "file-broker:9092"
    assert s.model.providers == ["cpu"]


def test_default_env_file_is_stack_env(clean_env: Path) -> None:
    write_env(clean_env / ".finpulse" / "stack.env", FINPULSE_ELASTICSEARCH__URL="http://127.0.0.1:19200")
    assert load_settings().elasticsearch.url == "http://127.0.0.1:19200"


def test_env_file_named_by_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = write_env(tmp_path / "named.env", FINPULSE_ALERTA__ENVIRONMENT="Staging")
    monkeypatch.setenv("FINPULSE_ENV_FILE", str(env))
    assert load_settings().alerta.environment == "Staging"


def test_missing_named_env_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINPULSE_ENV_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(SettingsError, match="FINPULSE_ENV_FILE"):
        load_settings()


def test_environment_wins_over_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = write_env(
        tmp_path / "stack.env",
        FINPULSE_KAFKA__BOOTSTRAP_SERVERS="file-broker:9092",
        FINPULSE_KAFKA__TOPIC_PREFIX="file-",
    )
    monkeypatch.setenv("FINPULSE_KAFKA__BOOTSTRAP_SERVERS", "env-broker:9092")
    s = load_settings(env)
    assert s.kafka.bootstrap_servers == "env-broker:9092"
    assert s.kafka.topic_prefix == "file-"  # what the environment does not set still comes from the file


# ---------------------------------------------------------------------------------------------------------------------
# secrets


def secret_settings() -> Settings:
    return load_settings(
        pseudonym_key=SECRET,
        kafka={"security_protocol": "SASL_SSL", "sasl_username": "svc", "sasl_password": SECRET},
        elasticsearch={"api_key": SECRET, "password": SECRET},
        alerta={"api_key": SECRET},
    )


def test_secrets_are_masked_in_repr_str_and_json() -> None:
    s = secret_settings()
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.kafka), str(s.elasticsearch), json.dumps(s.model_dump(mode="json"))):
        assert SECRET not in text
    assert "**********" in s.model_dump_json()
    assert s.alerta.api_key is not None and s.alerta.api_key.get_secret_value() == SECRET


def test_secrets_are_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = secret_settings()
    logger = logging.getLogger("finpulse.test_settings")
    with caplog.at_level(logging.INFO, logger="finpulse.test_settings"):
        logger.info("settings: %s", s)
        logger.info("kafka: %r", s.kafka, extra={"es": s.elasticsearch})
    assert caplog.records
    assert SECRET not in caplog.text
    formatter = JsonFormatter()
    for record in caplog.records:
        assert SECRET not in formatter.format(record)


def test_settings_to_env_round_trips_with_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    s = secret_settings()
    env = settings_to_env(s)
    assert env["FINPULSE_KAFKA__SASL_PASSWORD"] == SECRET  # another process needs the real value
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = load_settings()
    assert again.model_dump(mode="json") == s.model_dump(mode="json")
    assert again.elasticsearch.api_key is not None and again.elasticsearch.api_key.get_secret_value() == SECRET


def test_a_child_process_gets_the_settings_and_no_inherited_finpulse_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    s = secret_settings()
    assert s.stream.batch_size != 7
    monkeypatch.setenv("FINPULSE_STREAM__BATCH_SIZE", "7")  # set after the settings were built: must not override them
    monkeypatch.setenv("FINPULSE_TEST_LEFTOVER", "x")
    monkeypatch.setenv("UNRELATED_VARIABLE", "kept")
    env = child_process_env(s)
    assert "FINPULSE_TEST_LEFTOVER" not in env
    assert env["FINPULSE_STREAM__BATCH_SIZE"] == str(s.stream.batch_size)
    assert env["UNRELATED_VARIABLE"] == "kept"
    assert {k: v for k, v in env.items() if k.startswith("FINPULSE_")} == settings_to_env(s)


# ---------------------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("FINPULSE_KAFKA__BOOTSTRAP_SERVERS", "no-port-here", "no-port-here"),
        ("FINPULSE_STREAM__WEB_PORT", "70000", "70000"),
        ("FINPULSE_SPIKE__ALPHA", "often", "often"),
        ("FINPULSE_LOG_LEVEL", "LOUD", "LOUD"),
        ("FINPULSE_ELASTICSEARCH__URL", "es:9200", "es:9200"),
        ("FINPULSE_LOG_JSON", "maybe", "maybe"),
    ],
)
def test_bad_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, needle: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid settings: ")
    assert variable in message
    assert needle in message  # non-secret values are shown, they help
    assert "\n" not in message


def test_several_bad_values_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_STREAM__WEB_PORT", "-1")
    monkeypatch.setenv("FINPULSE_SPIKE__MIN_COUNT", "-3")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "FINPULSE_STREAM__WEB_PORT" in str(info.value) and "FINPULSE_SPIKE__MIN_COUNT" in str(info.value)


def test_bad_json_list_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_MODEL__PROVIDERS", "[cpu")
    with pytest.raises(SettingsError, match="FINPULSE_MODEL") as info:
        load_settings()
    assert "JSON" in str(info.value)


def test_bad_list_item_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_MODEL__PROVIDERS", '["gpu"]')
    with pytest.raises(SettingsError, match="FINPULSE_MODEL__PROVIDERS"):
        load_settings()


def test_secret_is_not_echoed_by_a_group_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # the SASL check fails on the whole kafka group, whose input holds the password
    monkeypatch.setenv("FINPULSE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FINPULSE_KAFKA__SASL_PASSWORD", SECRET)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "FINPULSE_KAFKA" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"pseudonym_key": 12345678}, "FINPULSE_PSEUDONYM_KEY"),
        ({"alerta": {"api_key": ["hunter2-very-secret-value"]}}, "FINPULSE_ALERTA__API_KEY"),
        ({"elasticsearch": {"password": {"x": SECRET}}}, "FINPULSE_ELASTICSEARCH__PASSWORD"),
        ({"kafka": {"sasl_password": 4242424242}}, "FINPULSE_KAFKA__SASL_PASSWORD"),
    ],
)
def test_bad_secret_value_is_not_echoed(overrides: dict[str, object], variable: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert variable in message
    for leaked in (SECRET, "12345678", "4242424242"):
        assert leaked not in message
    assert "secret" in message


def test_unknown_secret_sounding_variable_in_env_file_is_not_echoed(tmp_path: Path) -> None:
    env = write_env(tmp_path / "bad.env", FINPULSE_ADMIN_TOKEN=SECRET)
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert "FINPULSE_ADMIN_TOKEN" in str(info.value)
    assert SECRET not in str(info.value)


def test_cli_turns_settings_error_into_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from finpulse import cli

    monkeypatch.setenv("FINPULSE_KAFKA__BOOTSTRAP_SERVERS", "nope")
    monkeypatch.setattr(sys, "argv", ["finpulse", "config", "show"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 3  # SettingsError (finpulse.exceptions.EXIT_CODES)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid settings: FINPULSE_KAFKA__BOOTSTRAP_SERVERS")
    assert len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------------------
# table


def test_settings_table_covers_every_leaf() -> None:
    rows = settings_table()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names))
    assert all(name.startswith("FINPULSE_") for name in names)
    assert "FINPULSE_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "FINPULSE_SPIKE__WINDOW_S" in names
    table = dict((name, default) for name, default, _ in rows)
    assert table["FINPULSE_PSEUDONYM_KEY"] == "(secret)"
    assert table["FINPULSE_KAFKA__SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert all(description for _, _, description in rows if not _.startswith("FINPULSE_ALERTS__"))
    assert set(names) >= set(settings_to_env(load_settings()))
