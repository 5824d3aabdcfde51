"""Every patch finpulse makes to Faust and aiokafka internals, behind one entry: :func:`install`.

Each module here replaces one method of the worker's consumer (or one attribute of aiokafka's fetcher) and says
why in its docstring. :func:`check_targets` runs first: it fails loudly when an attribute a patch replaces does
not exist on the installed Faust/aiokafka classes (a version changed them), so no patch is ever a silent no-op.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finpulse.streams.exceptions import FaustFixError

if TYPE_CHECKING:
    from finpulse.settings import KafkaSettings
    from finpulse.streams.faust_fixes.changelog import ChangelogDeliveries

#: (module, class, attribute): what the patches of this package replace. Attributes set in ``__init__`` are found
#: in its source.
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("faust.transport.drivers.aiokafka", "Consumer", "_commit"),  # changelog.py
    ("faust.transport.drivers.aiokafka", "Consumer", "_new_offset"),  # contiguous.py
    ("faust.transport.drivers.aiokafka", "Consumer", "_add_gap"),  # gaps.py, log_start.py
    ("faust.transport.drivers.aiokafka", "Consumer", "earliest_offsets"),  # log_start.py
    ("faust.transport.drivers.aiokafka", "Consumer", "highwaters"),  # highwaters.py
    ("faust.transport.drivers.aiokafka", "Consumer", "resume_partitions"),  # seek_first.py
    ("faust.transport.drivers.aiokafka", "Consumer", "pause_partitions"),  # seek_first.py
    ("faust.transport.drivers.aiokafka", "Consumer", "perform_seek"),  # seek_first.py
    ("aiokafka.consumer.fetcher", "Fetcher", "_fetch_max_wait_ms"),  # fetching.py
)


def missing_targets() -> list[str]:
    """The patch targets that the installed Faust/aiokafka classes do not have (empty when all are there)."""
    import importlib

    missing = []
    for module_name, class_name, attribute in TARGETS:
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is None:
            missing.append(f"{module_name}.{class_name}")
            continue
        if hasattr(cls, attribute):
            continue
        init = getattr(cls, "__init__", None)
        if init is None or f"self.{attribute}" not in inspect.getsource(init):
            missing.append(f"{module_name}.{class_name}.{attribute}")
    return missing


def check_targets() -> None:
    """Raise :class:`FaustFixError` naming every patch target missing on the installed classes."""
    missing = missing_targets()
    if missing:
        raise FaustFixError(f"the installed Faust/aiokafka lack what finpulse patches: {', '.join(missing)}; "
                            "pin the versions in pyproject.toml or update streams/faust_fixes")


def install(app: Any, kafka: KafkaSettings, on_log_start_reset: Callable[[str], None] | None = None) -> ChangelogDeliveries:
    """Patch ``app``'s consumers (every one it creates) and add the fetch-wait task; returns the changelog tracker,
    which the caller hands the app's tables once they are declared. ``on_log_start_reset(topic)`` is called when a
    partition's commit floor moves up to its log start (a metric)."""
    from finpulse.streams.faust_fixes import fetching
    from finpulse.streams.faust_fixes.changelog import ChangelogDeliveries
    from finpulse.streams.faust_fixes.contiguous import commit_only_contiguous
    from finpulse.streams.faust_fixes.gaps import refuse_offset_gaps
    from finpulse.streams.faust_fixes.highwaters import verify_highwaters
    from finpulse.streams.faust_fixes.log_start import reset_below_log_start
    from finpulse.streams.faust_fixes.seek_first import deliver_after_seek

    check_targets()
    new_consumer = app._new_consumer
    changelogs = ChangelogDeliveries()

    def guarded_consumer() -> Any:
        consumer = new_consumer()
        verify_highwaters(consumer, kafka)  # table recovery does not trust ListOffsets alone
        changelogs.guard_commits(consumer)  # offsets commit only after the table writes before them reached Kafka
        refuse_offset_gaps(consumer)  # offsets the fetcher jumped over are not taken as processed
        reset_below_log_start(consumer, on_log_start_reset or (lambda _topic: None))  # ...unless retention deleted them
        commit_only_contiguous(consumer)  # a commit never passes an offset not yet acknowledged
        deliver_after_seek(consumer)  # stream partitions deliver nothing before their seek finished
        return consumer

    app._new_consumer = guarded_consumer
    fetching.register(app)
    return changelogs
