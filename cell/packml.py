"""PackML (ISA-TR88.00.02) states as published in the PLC's ``CellState`` tag.

How a station uses them:

* start-up: Stopped -> Resetting -> Idle;
* a job: Idle -> Starting (job accepted; the robot walks in if it comes from elsewhere)
  -> Execute -> Completing (result made durable and published) -> Complete (PLC latched)
  -> Resetting -> Idle;
* an internal condition (no robot, robot offline, a NOK waiting for a technician, a cell
  error): Holding -> Held, and Unholding -> Idle when it is resolved;
* an external one (the PLC's heartbeat is stale): Suspending -> Suspended, and
  Unsuspending -> Idle;
* shut-down: Stopping -> Stopped; a fault the cell cannot recover from: Aborting ->
  Aborted, then Clearing -> Stopped.
"""

from __future__ import annotations

from enum import IntEnum


class PackML(IntEnum):
    UNDEFINED = 0
    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17


S = PackML
_ANY_RUNNING = {
    S.IDLE,
    S.STARTING,
    S.EXECUTE,
    S.COMPLETING,
    S.COMPLETE,
    S.RESETTING,
    S.HOLDING,
    S.HELD,
    S.UNHOLDING,
    S.SUSPENDING,
    S.SUSPENDED,
    S.UNSUSPENDING,
}

# state -> states it may go to next (besides Stopping and Aborting, allowed from any
# running state).
TRANSITIONS: dict[PackML, frozenset[PackML]] = {
    S.UNDEFINED: frozenset({S.STOPPED}),
    S.STOPPED: frozenset({S.RESETTING}),
    S.RESETTING: frozenset({S.IDLE, S.HOLDING}),
    S.IDLE: frozenset({S.STARTING, S.HOLDING, S.SUSPENDING}),
    S.STARTING: frozenset({S.EXECUTE, S.HOLDING}),
    S.EXECUTE: frozenset({S.COMPLETING, S.HOLDING, S.SUSPENDING}),
    S.COMPLETING: frozenset({S.COMPLETE, S.HOLDING}),
    S.COMPLETE: frozenset({S.RESETTING}),
    S.HOLDING: frozenset({S.HELD}),
    S.HELD: frozenset({S.UNHOLDING}),
    S.UNHOLDING: frozenset({S.IDLE, S.EXECUTE, S.HOLDING}),
    S.SUSPENDING: frozenset({S.SUSPENDED}),
    S.SUSPENDED: frozenset({S.UNSUSPENDING, S.HOLDING}),
    S.UNSUSPENDING: frozenset({S.IDLE, S.EXECUTE}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.ABORTING: frozenset({S.ABORTED}),
    S.ABORTED: frozenset({S.CLEARING}),
    S.CLEARING: frozenset({S.STOPPED}),
}


def allowed(src: PackML, dst: PackML) -> bool:
    """Whether PackML lets a unit go from ``src`` to ``dst`` directly."""
    if dst in (S.STOPPING, S.ABORTING):
        return src in _ANY_RUNNING or src in (S.STOPPED, S.CLEARING, S.UNDEFINED)
    return dst in TRANSITIONS.get(src, frozenset())


def path(src: PackML, dst: PackML) -> list[PackML]:
    """The shortest chain of PackML transitions from ``src`` to ``dst`` (``dst`` last,
    ``src`` not included); empty when already there. Raises ``ValueError`` if none."""
    if src == dst:
        return []
    frontier: list[list[PackML]] = [[src]]
    seen = {src}
    while frontier:
        nxt: list[list[PackML]] = []
        for route in frontier:
            for s in PackML:
                if s not in seen and allowed(route[-1], s):
                    if s == dst:
                        return [*route[1:], s]
                    seen.add(s)
                    nxt.append([*route, s])
        frontier = nxt
    raise ValueError(f"no PackML transition path from {src.name} to {dst.name}")
