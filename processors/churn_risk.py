"""Churn risk of a customer from service and usage signals (a profile processor).

Reads the profile document, so it sees every channel of the person at once:
open tickets and their number, satisfaction scores and returns (service), and
orders (usage). Writes the trait ``churn_risk``: ``low``, ``medium`` or
``high``; people who never ordered get no value.
"""

from __future__ import annotations

from cdp.processors import Input, processor
from cdp.profile import ProfileDocument


@processor(input=Input.PROFILES)
def churn_risk(profile: ProfileDocument) -> str | None:
    """Churn risk of customers (low, medium, high) from tickets, satisfaction and returns."""
    facts = profile.computed
    if facts.order_count == 0:
        return None  # not a customer (yet): nothing to lose
    points = 2 * min(len(facts.open_tickets), 2)  # unresolved problems weigh most
    if facts.tickets_total >= 3:
        points += 1  # many problems, even if resolved
    if facts.avg_satisfaction is not None:
        points += 3 if facts.avg_satisfaction < 5 else 1 if facts.avg_satisfaction < 7 else 0
    if facts.return_count:
        points += 1
    return "high" if points >= 4 else "medium" if points >= 2 else "low"
