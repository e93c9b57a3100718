"""Who on the staff side may see and act on which feedback. Pure: roles and units in, a decision out.

A unit member works the items assigned to their own unit; supervisors and up, and admins, see and act on
everything; the oversight board sees everything and changes nothing, so its record stays independent of
the people it oversees.
"""

from __future__ import annotations

from heard_intake.auth import Principal

UNIT_ROLES: frozenset[str] = frozenset({"unit_member"})
ACT_ON_ALL_ROLES: frozenset[str] = frozenset({"supervisor", "commander", "professional_standards", "admin"})
SEE_ALL_ROLES: frozenset[str] = ACT_ON_ALL_ROLES | {"oversight"}
AUDIT_ROLES: frozenset[str] = frozenset({"oversight", "professional_standards", "admin"})


class AccessDenied(Exception):
    """The principal may not do this; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_can_see(principal: Principal, item_unit_id: str | None) -> None:
    if principal.roles & SEE_ALL_ROLES:
        return
    if principal.roles & UNIT_ROLES and principal.unit_id is not None and principal.unit_id == item_unit_id:
        return
    raise AccessDenied("not_your_unit", "This feedback is not assigned to your unit.")


def check_can_act(principal: Principal, item_unit_id: str | None) -> None:
    if principal.roles & ACT_ON_ALL_ROLES:
        return
    if principal.roles & UNIT_ROLES and principal.unit_id is not None and principal.unit_id == item_unit_id:
        return
    if principal.roles & SEE_ALL_ROLES:
        raise AccessDenied("read_only", "Your role can read feedback and its history but not change it.")
    raise AccessDenied("not_your_unit", "This feedback is not assigned to your unit.")


def list_scope(principal: Principal, requested_unit_id: str | None) -> str | None:
    """The unit filter a listing must use: a unit member only ever lists their own unit."""
    if principal.roles & SEE_ALL_ROLES:
        return requested_unit_id
    if principal.roles & UNIT_ROLES and principal.unit_id is not None:
        if requested_unit_id not in (None, principal.unit_id):
            raise AccessDenied("not_your_unit", "You can list only the feedback assigned to your own unit.")
        return principal.unit_id
    raise AccessDenied("no_unit", "Your token has no unit, so there is no feedback assigned to you.")


def check_can_audit(principal: Principal) -> None:
    if not principal.roles & AUDIT_ROLES:
        raise AccessDenied("forbidden", f"The audit trail needs one of the roles: {', '.join(sorted(AUDIT_ROLES))}.")
