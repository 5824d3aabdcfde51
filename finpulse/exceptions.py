"""Errors shared by every finpulse subsystem."""

from __future__ import annotations

#: The exit codes of every finpulse command. A named finpulse error exits with its room's code (the base error class
#: of each room's ``exceptions.py`` sets it) after one ``error: ...`` line on stderr.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "failure: an unexpected error (a bug), with its traceback",
    2: "usage error: a command, option or argument the command line refuses",
    3: "settings: a FINPULSE_ variable is missing or unusable (SettingsError)",
    4: "infrastructure: the embedded stack or Kafka topic administration (StackError, TopicAdminError)",
    5: "models: training data, training, export, model artefacts (ModelsError, ExportError, ModelRuntimeError)",
    6: "sources: feeds, replay files, the clicks API, tagging data (SourceError, TaggingError)",
    7: "streaming: the worker, its sinks and records (StreamError, SinkError, ContractError)",
    8: "apps: the demo, benchmarks and the live page (DemoError, BenchError, TrendsError)",
}


class FinpulseError(Exception):
    """Base class of every error finpulse raises on purpose; ``exit_code`` is the command's exit status for it."""

    exit_code: int = 1


class SettingsError(FinpulseError):
    """A setting is missing or has a value that cannot be used.

    The message always names the environment variable to fix.
    """

    exit_code = 3
