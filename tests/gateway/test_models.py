"""The message lifecycle table and the per-message roll-up."""

import pytest

from gateway.models import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    PartState,
    ThrottlePolicy,
    TransitionError,
    check_transition,
    rollup,
)

S = PartState


def test_every_state_has_a_row() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(PartState)


def test_terminal_states_are_exactly_the_final_outcomes() -> None:
    assert {S.DELIVERED, S.FAILED, S.EXPIRED, S.CANCELLED} == TERMINAL_STATES


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ACCEPTED, S.QUEUED),
        (S.QUEUED, S.SENDING),
        (S.SENDING, S.SENT),
        (S.SENDING, S.QUEUED),  # temporary error: retry
        (S.SENDING, S.UNCERTAIN),  # crash during AT+CMGS
        (S.SENT, S.DELIVERED),
        (S.UNCERTAIN, S.QUEUED),  # only with the account's opt-in, enforced by the outbox
        (S.UNCERTAIN, S.DELIVERED),  # a late status report settles it
    ],
)
def test_allowed_transitions(current: PartState, target: PartState) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.SENT, S.QUEUED),  # never resend something the network acknowledged
        (S.SENT, S.SENDING),
        (S.DELIVERED, S.FAILED),
        (S.CANCELLED, S.QUEUED),
        (S.ACCEPTED, S.SENT),
        (S.SENDING, S.CANCELLED),  # too late to cancel once on the wire
    ],
)
def test_forbidden_transitions(current: PartState, target: PartState) -> None:
    with pytest.raises(TransitionError, match=f"{current.value} -> {target.value}"):
        check_transition(current, target)


def test_rollup() -> None:
    assert rollup([S.DELIVERED, S.DELIVERED]) == S.DELIVERED
    assert rollup([S.DELIVERED, S.SENT]) == S.SENT
    assert rollup([S.SENT, S.QUEUED, S.DELIVERED]) == S.QUEUED
    assert rollup([S.DELIVERED, S.FAILED]) == S.FAILED
    assert rollup([S.UNCERTAIN, S.DELIVERED]) == S.UNCERTAIN
    assert rollup([S.FAILED, S.UNCERTAIN]) == S.FAILED
    with pytest.raises(ValueError, match="at least one part"):
        rollup([])


def test_throttle_policy_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        ThrottlePolicy(interval=0)
    with pytest.raises(ValueError, match="per_hour"):
        ThrottlePolicy(per_hour=0)
