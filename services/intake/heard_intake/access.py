"""Who on the staff side may see and act on which feedback. Pure: roles and units in, a decision out.

A unit member works the items assigned to their own unit; supervisors and up, and admins, see and act on
everything; the oversight board sees everything and changes nothing, so its record stays independent of
the people it oversees — with one exception: it may triage (confirm or change kind and severity), because
deciding what is misconduct is what it is there for. Only professional standards and the board may lower
a critical item.
"""

from __future__ import annotations

from heard_intake.auth import Principal
from heard_shared.events import StaffRole

UNIT_ROLES: frozenset[str] = frozenset({"unit_member"})
ACT_ON_ALL_ROLES: frozenset[str] = frozenset({"supervisor", "commander", "professional_standards", "admin"})
SEE_ALL_ROLES: frozenset[str] = ACT_ON_ALL_ROLES | {"oversight"}
AUDIT_ROLES: frozenset[str] = frozenset({"oversight", "professional_standards", "admin"})
LOWER_CRITICAL_ROLES: frozenset[str] = frozenset({"professional_standards", "oversight"})
# The role a triage is recorded under: the most senior the person holds, so a lowering of a critical item
# names the role that allowed it.
_ROLE_PRECEDENCE: tuple[StaffRole, ...] = (
    "oversight",
    "professional_standards",
    "admin",
    "commander",
    "supervisor",
    "unit_member",
)


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


def check_can_triage(principal: Principal, item_unit_id: str | None) -> None:
    if "oversight" in principal.roles:
        return
    check_can_act(principal, item_unit_id)


def may_lower_critical(principal: Principal) -> bool:
    return bool(principal.roles & LOWER_CRITICAL_ROLES)


def acting_role(principal: Principal) -> StaffRole:
    return next(role for role in _ROLE_PRECEDENCE if role in principal.roles)
