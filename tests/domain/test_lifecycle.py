from domain.lifecycle import TERMINAL, allowed_actions, next_status
from models.ticket import Action, TicketStatus

S, A = TicketStatus, Action


def test_happy_path_walks_every_open_status():
    status = S.NEW
    for action, expected in [
        (A.CLAIM, S.ASSIGNED),
        (A.START, S.IN_PROGRESS),
        (A.RESOLVE, S.RESOLVED),
        (A.REOPEN, S.IN_PROGRESS),
        (A.RESOLVE, S.RESOLVED),
        (A.CLOSE, S.CLOSED),
    ]:
        status = next_status(status, action)
        assert status == expected


def test_terminal_statuses_allow_nothing():
    assert TERMINAL == {S.CLOSED, S.CANCELLED}
    for status in TERMINAL:
        assert allowed_actions(status) == []
        assert all(next_status(status, a) is None for a in A)


def test_illegal_moves_are_refused():
    assert next_status(S.NEW, A.RESOLVE) is None
    assert next_status(S.IN_PROGRESS, A.CLOSE) is None
    assert next_status(S.RESOLVED, A.CANCEL) is None  # resolved work is closed or reopened, not cancelled
    assert next_status(S.ASSIGNED, A.CLAIM) is None


def test_comment_keeps_status_and_allowed_actions_are_ordered():
    for status in set(S) - TERMINAL:
        assert next_status(status, A.COMMENT) == status
    assert allowed_actions(S.NEW) == [A.CLAIM, A.ASSIGN, A.CANCEL, A.COMMENT]
