"""The ticket state machine: which status may follow which."""

from __future__ import annotations

from app.errors import InvalidTransition
from app.schemas.tickets import TicketStatus

S = TicketStatus

TRANSITIONS: dict[TicketStatus, tuple[TicketStatus, ...]] = {
    S.new: (S.open,),
    S.open: (S.pending, S.resolved),
    S.pending: (S.open,),
    S.resolved: (S.open, S.closed),
    S.closed: (),
}


def allowed(current: TicketStatus, reopen_allowed: bool = True) -> list[TicketStatus]:
    """Where a ticket may go from `current`; a resolved one reopens only inside the window."""
    targets = TRANSITIONS[current]
    if current is S.resolved and not reopen_allowed:
        targets = tuple(t for t in targets if t is not S.open)
    return list(targets)


def check(current: TicketStatus, target: TicketStatus, reopen_allowed: bool = True) -> None:
    permitted = allowed(current, reopen_allowed)
    if target in permitted:
        return
    why = (
        "the reopen window has passed"
        if current is S.resolved and target is S.open
        else f"a {current.value} ticket cannot become {target.value}"
    )
    raise InvalidTransition(
        f"{why}; allowed from {current.value}: {', '.join(t.value for t in permitted) or 'none'}",
        extra={"status": current.value, "allowed_transitions": [t.value for t in permitted]},
    )
