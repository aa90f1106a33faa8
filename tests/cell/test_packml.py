import pytest

from cell.packml import PackML as S
from cell.packml import allowed, path


def test_a_job_cycle_and_a_hold_follow_packml() -> None:
    assert path(S.STOPPED, S.IDLE) == [S.RESETTING, S.IDLE]
    assert path(S.IDLE, S.EXECUTE) == [S.STARTING, S.EXECUTE]
    assert path(S.EXECUTE, S.COMPLETE) == [S.COMPLETING, S.COMPLETE]
    assert path(S.COMPLETE, S.IDLE) == [S.RESETTING, S.IDLE]
    assert path(S.EXECUTE, S.HELD) == [S.HOLDING, S.HELD]
    assert path(S.HELD, S.IDLE) == [S.UNHOLDING, S.IDLE]
    assert path(S.IDLE, S.SUSPENDED) == [S.SUSPENDING, S.SUSPENDED]
    assert path(S.HELD, S.STOPPED) == [S.STOPPING, S.STOPPED]
    assert path(S.IDLE, S.IDLE) == []


def test_illegal_jumps_are_not_allowed() -> None:
    assert not allowed(S.IDLE, S.COMPLETE)
    assert not allowed(S.HELD, S.EXECUTE)
    assert not allowed(S.STOPPED, S.EXECUTE)
    assert allowed(S.EXECUTE, S.ABORTING)
    with pytest.raises(ValueError, match="no PackML transition path"):
        path(S.ABORTED, S.UNDEFINED)  # nothing returns a unit to Undefined
