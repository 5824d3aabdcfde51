"""Offsets are committed only after the table changelog records sent before the commit were delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from finpulse.streams.exceptions import ChangelogDeliveryError
from finpulse.streams.faust_fixes.changelog import ChangelogDeliveries


class FakeTable:
    """Faust's ``send_changelog`` contract: queue the record, return its delivery future at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, asyncio.Future[Any]]] = []

    def send_changelog(self, partition: int | None, key: Any, value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((key, future))
        return future


class FakeConsumer:
    def __init__(self) -> None:
        self.committed: list[dict[Any, int]] = []

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        self.committed.append(dict(offsets))
        return True


def _wired() -> tuple[ChangelogDeliveries, FakeTable, FakeConsumer]:
    deliveries, table, consumer = ChangelogDeliveries(), FakeTable(), FakeConsumer()
    deliveries.track([table])
    deliveries.guard_commits(consumer)
    return deliveries, table, consumer


def test_a_commit_waits_for_the_changelog_records_sent_before_it() -> None:
    async def main() -> None:
        deliveries, table, consumer = _wired()
        table.send_changelog(0, "k1", 1)
        table.send_changelog(0, "k2", 2)
        assert deliveries.pending == 2
        commit = asyncio.create_task(consumer._commit({"tp": 10}))
        await asyncio.sleep(0.05)
        assert not commit.done() and consumer.committed == []  # k1, k2 not acknowledged yet
        table.sent[0][1].set_result("meta-1")
        await asyncio.sleep(0.05)
        assert not commit.done()
        table.sent[1][1].set_result("meta-2")
        assert await commit is True
        assert consumer.committed == [{"tp": 10}]
        assert deliveries.pending == 0

    asyncio.run(main())


def test_nothing_pending_commits_at_once() -> None:
    async def main() -> None:
        _, _, consumer = _wired()
        assert await asyncio.wait_for(consumer._commit({"tp": 3}), 1.0) is True
        assert consumer.committed == [{"tp": 3}]

    asyncio.run(main())


def test_a_failed_changelog_delivery_fails_the_commit() -> None:
    async def main() -> None:
        _, table, consumer = _wired()
        table.send_changelog(1, "k", "v")
        table.sent[0][1].set_exception(ConnectionError("broker gone"))
        with pytest.raises(ChangelogDeliveryError, match="broker gone"):
            await consumer._commit({"tp": 5})
        assert consumer.committed == []

    asyncio.run(main())


def test_a_cancelled_commit_leaves_the_producers_futures_alone() -> None:
    async def main() -> None:
        deliveries, table, consumer = _wired()
        table.send_changelog(0, "k", "v")
        commit = asyncio.create_task(consumer._commit({"tp": 1}))
        await asyncio.sleep(0.02)
        commit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await commit
        future = table.sent[0][1]
        assert not future.cancelled()
        future.set_result("meta")  # the producer can still resolve it
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
        assert deliveries.pending == 0 and consumer.committed == []

    asyncio.run(main())
