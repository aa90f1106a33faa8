"""Station leases on a real PostgreSQL: one winner among contenders, takeover after expiry
with a larger fencing number, a former holder's renewal refused, release for a standby.

Each test works on station ids of its own in the shared test database, with sessions
that commit as the orchestrator's do, so that two connections really contend.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from cell.record.leases import acquire, release, renew, station_leases

LEASE_S = 30.0


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def stations() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"L{tag}-A", f"L{tag}-B"]


def _acquire(sessions: sessionmaker[Session], owner: str, ids: list[str]) -> dict[str, int]:
    with sessions() as s:
        got = acquire(s, owner, ids, LEASE_S)
        s.commit()
        return got


def _expire(sessions: sessionmaker[Session], ids: list[str]) -> None:
    """Age the leases past their expiry, as a crashed holder's would be."""
    with sessions() as s:
        s.execute(
            text(
                "UPDATE station_leases SET expires_at = clock_timestamp() - interval '1 second'"
                " WHERE station_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        s.commit()


def _leases(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, tuple[str, int, bool]]:
    with sessions() as s:
        return {
            lease.station_id: (lease.owner, lease.fencing, lease.expired)
            for lease in station_leases(s)
            if lease.station_id in ids
        }


def test_a_free_station_goes_to_the_first_and_a_live_lease_stays_its_holders(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    assert _acquire(sessions, "host-a:1:aa", stations) == {sid: 1 for sid in stations}
    assert _acquire(sessions, "host-b:2:bb", stations) == {}
    # Asking again for what it holds renews it, fencing unchanged.
    assert _acquire(sessions, "host-a:1:aa", stations) == {sid: 1 for sid in stations}
    assert _leases(sessions, stations) == {sid: ("host-a:1:aa", 1, False) for sid in stations}


def test_two_contenders_at_once_never_both_win(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    # The first contender's statement has run but not committed: its rows are locked.
    first = sessions()
    assert acquire(first, "host-a:1:aa", stations, LEASE_S) == {sid: 1 for sid in stations}
    answer: dict[str, dict[str, int]] = {}

    def second() -> None:
        answer["b"] = _acquire(sessions, "host-b:2:bb", stations)

    contender = threading.Thread(target=second)
    contender.start()
    contender.join(0.5)
    assert contender.is_alive(), "the second contender must wait for the first's row locks"
    first.commit()
    first.close()
    contender.join(30)
    assert answer["b"] == {}
    assert _leases(sessions, stations) == {sid: ("host-a:1:aa", 1, False) for sid in stations}


def test_many_contenders_racing_leave_one_owner_per_station(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    owners = [f"host-{i}:{i}:x" for i in range(6)]
    won: dict[str, dict[str, int]] = {}
    start = threading.Barrier(len(owners))

    def contend(owner: str) -> None:
        start.wait()
        won[owner] = _acquire(sessions, owner, stations)

    threads = [threading.Thread(target=contend, args=(o,)) for o in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for sid in stations:
        winners = [o for o in owners if sid in won[o]]
        assert len(winners) == 1
        assert _leases(sessions, [sid])[sid] == (winners[0], 1, False)


def test_an_expired_lease_is_taken_over_with_a_larger_fencing_and_the_old_renew_fails(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    held_a = _acquire(sessions, "host-a:1:aa", stations)
    _expire(sessions, stations)
    assert _acquire(sessions, "host-b:2:bb", stations[:1]) == {stations[0]: 2}
    with sessions() as s:
        # The former holder's renewal keeps only what is still its own.
        assert renew(s, "host-a:1:aa", held_a, LEASE_S) == {stations[1]: 1}
        s.commit()
    got = _leases(sessions, stations)
    assert got[stations[0]] == ("host-b:2:bb", 2, False)
    assert got[stations[1]] == ("host-a:1:aa", 1, False)  # renewed: live again
    # Back to the first owner after another expiry: a change of owner, so 3.
    _expire(sessions, stations[:1])
    assert _acquire(sessions, "host-a:1:aa", stations) == {stations[0]: 3, stations[1]: 1}


def test_a_renewal_with_a_stale_fencing_number_is_refused(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    _acquire(sessions, "host-a:1:aa", stations[:1])
    with sessions() as s:
        assert renew(s, "host-a:1:aa", {stations[0]: 7}, LEASE_S) == {}
        assert renew(s, "host-b:2:bb", {stations[0]: 1}, LEASE_S) == {}
        assert renew(s, "host-a:1:aa", {stations[0]: 1}, LEASE_S) == {stations[0]: 1}
        s.commit()


def test_release_lets_a_standby_take_over_at_once(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    held = _acquire(sessions, "host-a:1:aa", stations)
    assert _acquire(sessions, "host-b:2:bb", stations) == {}
    with sessions() as s:
        assert release(s, "host-b:2:bb", held) == []  # not its to release
        assert release(s, "host-a:1:aa", stations) == sorted(stations)
        s.commit()
    assert all(expired for _, _, expired in _leases(sessions, stations).values())
    assert _acquire(sessions, "host-b:2:bb", stations) == {sid: 2 for sid in stations}


def test_the_read_gives_the_database_clock_with_each_lease(
    sessions: sessionmaker[Session], stations: list[str]
) -> None:
    _acquire(sessions, "host-a:1:aa", stations[:1])
    with sessions() as s:
        (lease,) = [x for x in station_leases(s) if x.station_id == stations[0]]
    assert lease.acquired_at == lease.renewed_at <= lease.now < lease.expires_at
    assert 0 < lease.expires_in_s <= LEASE_S
    assert lease.renewed_ago_s >= 0
