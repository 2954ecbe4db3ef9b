"""Product-interest affinity from web and eCommerce behaviour (an event processor).

Scores product categories per identifier: a shop product view counts 1, a
product page on the website (``/products/<category>/<product>``) counts 1, an
add to cart counts 3 (its category comes from a product view of the same
product; a cart event seen before that view is kept until the view arrives, so
the order of events does not matter). Writes the trait ``product_affinity``:
the category with the highest score (ties: alphabetically first).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cdp.contracts import events as ev
from cdp.processors import State, processor

VIEW, WEB_VIEW, CART_ADD = 1, 1, 3
"""Weights of a shop product view, a website product page and an add to cart."""


@processor(event_types={"product_view", "cart", "page_view"})
def product_affinity(event: ev.Event, state: State) -> str | None:
    """Product category a person is most interested in, from product views and carts."""
    scores: dict[str, int] = state.setdefault("scores", {})
    products: dict[str, str] = state.setdefault("products", {})  # product id -> category
    waiting: dict[str, int] = state.setdefault("waiting", {})  # product id -> cart weight
    payload = event.payload
    if isinstance(payload, ev.ProductViewPayload) and payload.category:
        scores[payload.category] = scores.get(payload.category, 0) + VIEW
        products[payload.product_id] = payload.category
        if payload.product_id in waiting:  # carts that came before their product's view
            scores[payload.category] += waiting.pop(payload.product_id)
    elif isinstance(payload, ev.CartPayload) and payload.action == "add":
        category = products.get(payload.product_id)
        if category is None:
            waiting[payload.product_id] = waiting.get(payload.product_id, 0) + CART_ADD
        else:
            scores[category] = scores.get(category, 0) + CART_ADD
    elif isinstance(payload, ev.PageViewPayload):
        parts = urlsplit(payload.url).path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "products" and parts[1]:
            scores[parts[1]] = scores.get(parts[1], 0) + WEB_VIEW
    if not scores:
        return None
    return min(scores, key=lambda category: (-scores[category], category))
