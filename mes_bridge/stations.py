"""The stations one ``PlcSession`` serves, and how what the PLC shows reaches them.

Each station has its ``StationHandshake`` (the protocol) and its ``StationChannel`` (what
the cell task awaits). ``SessionStations`` applies a batch of data changes or a full read
to the machines, in the order the PLC writes the tags, and hands on what they produce:
jobs to the channels; notices to the log, to the channel's history and to the session's
``on_notice``. It does no I/O: the writes a full read calls for are returned to the
session, which sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from mes_bridge.channel import ChannelSession, StationChannel
from mes_bridge.errors import BridgeError
from mes_bridge.handshake import StationHandshake
from mes_bridge.handshake_types import Notice, NoticeKind, Outcome, WriteStep
from mes_bridge.tags import Tag

log = logging.getLogger(__name__)

# Order in which one batch of changes is applied: PartId and ProgramNo are written by the
# PLC before JobSeq, and may arrive in the same notification as JobSeq.
_APPLY_ORDER = (Tag.PART_ID, Tag.PROGRAM_NO, Tag.RESULT_ACK_SEQ, Tag.HEARTBEAT_PLC, Tag.JOB_SEQ)
_QUIET = {NoticeKind.RESUMED, NoticeKind.REWRITTEN, NoticeKind.PLC_HEARTBEAT_RESUMED}


class SessionStations:
    """One machine and one channel per station id; fed by the session's one consumer.

    ``known_job_seqs`` (last JobSeq on record per station) seeds each machine so that a
    counter reset or a gap that happened while nothing was connected is still seen.
    """

    def __init__(
        self,
        session: ChannelSession,
        station_ids: Iterable[str],
        known_job_seqs: Mapping[str, int],
        on_notice: Callable[[Notice], None] | None,
    ) -> None:
        self.machines = {
            sid: StationHandshake(sid, last_job_seq=known_job_seqs.get(sid)) for sid in station_ids
        }
        self.channels = {sid: StationChannel(session, m) for sid, m in self.machines.items()}
        self._on_notice = on_notice

    def apply_changes(self, updates: Mapping[str, Mapping[Tag, object]]) -> None:
        """Data changes of one batch, per station the latest value of each tag."""
        for sid, changes in updates.items():
            machine, channel = self.machines[sid], self.channels[sid]
            for tag in _APPLY_ORDER:
                if tag not in changes:
                    continue
                value = changes[tag]
                if tag is Tag.HEARTBEAT_PLC:
                    channel.heartbeat_seen(value)
                elif not (tag is Tag.JOB_SEQ and value == machine.seen.job_seq):
                    out = machine.observe(tag, value)
                    self.deliver(sid, out)
                    if out.writes:  # the machine only writes from resync; keep it that way
                        raise BridgeError(f"unexpected writes on a data change: {out.writes}")
            channel.changed()

    def resync(
        self, values: Mapping[str, Mapping[Tag, object]]
    ) -> list[tuple[str, tuple[WriteStep, ...]]]:
        """A full read after a (re)connect, every station; returns the writes it calls for."""
        pending: list[tuple[str, tuple[WriteStep, ...]]] = []
        for sid, machine in self.machines.items():
            station_values = values.get(sid, {})
            out = machine.resync(station_values)
            log.debug("station %s resync: %s", sid, out.classification)
            self.channels[sid].heartbeat_seen(station_values.get(Tag.HEARTBEAT_PLC), resync=True)
            self.deliver(sid, out)
            if out.writes:
                pending.append((sid, out.writes))
        return pending

    def cell_states(self) -> list[tuple[str, Tag, object]]:
        """CellState writes for every station whose cell has asked for a state."""
        return [
            (sid, Tag.CELL_STATE, ch.cell_state)
            for sid, ch in self.channels.items()
            if ch.cell_state is not None
        ]

    def write_refused(self, station_id: str, job_seq: int | None, detail: str) -> None:
        """Report a write the PLC refused as a ``write_refused`` notice of the station."""
        notice = Notice(station_id, NoticeKind.WRITE_REFUSED, job_seq, detail)
        self.deliver(station_id, Outcome(notices=(notice,)))

    def check_liveness(self) -> None:
        """Report every station whose PLC heartbeat turned stale, or alive again."""
        for sid, channel in self.channels.items():
            notice = channel.liveness_notice()
            if notice is not None:
                self.deliver(sid, Outcome(notices=(notice,)))
                channel.changed()

    def deliver(self, station_id: str, out: Outcome) -> None:
        """Notices to the log, the channel and ``on_notice``; jobs to the channel."""
        channel = self.channels[station_id]
        for notice in out.notices:
            level = logging.INFO if notice.kind in _QUIET else logging.WARNING
            log.log(
                level,
                "station %s %s (JobSeq %s): %s",
                notice.station_id,
                notice.kind.value,
                notice.job_seq,
                notice.detail,
            )
            channel.note(notice)
            if self._on_notice is not None:
                self._on_notice(notice)
        for job in out.jobs:
            channel.offer(job)

    def connection_lost(self) -> None:
        """Every machine forgets that the PLC's view is known until the next resync."""
        for machine in self.machines.values():
            machine.connection_lost()

    def wake(self) -> None:
        """Let every channel's waiters re-check their conditions."""
        for channel in self.channels.values():
            channel.changed()
