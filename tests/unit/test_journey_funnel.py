"""Funnel metrics on a small hand-built example (every number worked out by hand)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cdp.journey import (
    UNKNOWN_REGION,
    FunnelSegment,
    JourneyState,
    StageMetrics,
    Transition,
    aggregate_funnel,
    compute_funnel,
    funnel_contribution,
    percentile,
)
from tests.unit.test_journey_support import T0, journey

DEFINITION = journey("")  # need, search, choice, purchase, usage


def _state(region: str | None, *moves: tuple[str, float, str]) -> JourneyState:
    """A state from ``(stage, seconds after T0, channel)`` moves."""
    history = []
    previous = None
    for index, (stage, seconds, channel) in enumerate(moves):
        history.append(
            Transition(
                from_stage=previous,
                to_stage=stage,
                at=T0 + timedelta(seconds=seconds),
                event_id=f"e{index}",
                channel=channel,
                rule=f"r.{stage}",
            )
        )
        previous = stage
    last = history[-1] if history else None
    return JourneyState(
        journey="test",
        stage=last.to_stage if last else None,
        entered_at=last.at if last else None,
        region=region,
        history=tuple(history),
    )


STATES = [
    # P1: need -> search -> choice
    _state("DE", ("need", 0, "web"), ("search", 100, "web"), ("choice", 400, "crm")),
    # P2: need -> purchase (skips search and choice)
    _state("DE", ("need", 0, "web"), ("purchase", 1000, "ecommerce")),
    # P3: enters at search
    _state("CH", ("search", 0, "web")),
    # P4: no stage
    _state(None),
    # P5: need -> search -> need (backward) -> search
    _state(
        "CH",
        ("need", 0, "web"),
        ("search", 200, "web"),
        ("need", 500, "web"),
        ("search", 600, "ecommerce"),
    ),
]

FUNNEL = compute_funnel(STATES, DEFINITION)


def _row(segment: FunnelSegment, stage: str) -> tuple[object, ...]:
    m = FUNNEL.stage(stage, segment)
    return (
        m.current,
        m.reached,
        m.converted,
        m.conversion,
        m.stays,
        m.median_seconds,
        m.p90_seconds,
    )


def test_overall() -> None:
    overall = FUNNEL.overall
    assert FUNNEL.stages == ("need", "search", "choice", "purchase", "usage")
    assert (overall.profiles, overall.unstaged) == (5, 1)
    # current, reached, converted, conversion, stays, median, p90
    assert _row(overall, "need") == (0, 4, 4, 1.0, 4, 100.0, 1000.0)
    assert _row(overall, "search") == (2, 4, 2, 0.5, 2, 300.0, 300.0)
    assert _row(overall, "choice") == (1, 2, 1, 0.5, 0, None, None)
    assert _row(overall, "purchase") == (1, 1, 0, 0.0, 0, None, None)
    assert _row(overall, "usage") == (0, 0, 0, None, 0, None, None)
    assert FUNNEL.stage("choice").owner == "sales"


def test_by_region() -> None:
    assert list(FUNNEL.by_region) == ["CH", "DE", UNKNOWN_REGION]
    de, ch, unknown = (FUNNEL.by_region[k] for k in ("DE", "CH", UNKNOWN_REGION))
    assert (de.profiles, de.unstaged) == (2, 0)
    assert _row(de, "need") == (0, 2, 2, 1.0, 2, 100.0, 1000.0)
    assert _row(de, "search") == (0, 2, 2, 1.0, 1, 300.0, 300.0)
    assert _row(de, "choice") == (1, 2, 1, 0.5, 0, None, None)
    assert _row(de, "purchase") == (1, 1, 0, 0.0, 0, None, None)
    assert (ch.profiles, ch.unstaged) == (2, 0)
    assert _row(ch, "need") == (0, 2, 2, 1.0, 2, 100.0, 200.0)
    assert _row(ch, "search") == (2, 2, 0, 0.0, 1, 300.0, 300.0)
    assert (unknown.profiles, unknown.unstaged) == (1, 1)
    assert _row(unknown, "need") == (0, 0, 0, None, 0, None, None)


def test_by_channel() -> None:
    assert list(FUNNEL.by_channel) == ["crm", "ecommerce", "web"]
    web, crm, shop = (FUNNEL.by_channel[k] for k in ("web", "crm", "ecommerce"))
    # current: by the transition into the current stage
    assert (web.profiles, crm.profiles, shop.profiles) == (1, 1, 2)
    assert web.unstaged == crm.unstaged == shop.unstaged == 0
    # reached/converted: by the arrival at the stage (entered or skipped over)
    assert _row(web, "need") == (0, 4, 4, 1.0, 4, 100.0, 1000.0)
    assert _row(web, "search") == (1, 3, 1, 1 / 3, 2, 300.0, 300.0)
    assert _row(crm, "choice") == (1, 1, 0, 0.0, 0, None, None)
    assert _row(shop, "search") == (1, 1, 1, 1.0, 0, None, None)
    assert _row(shop, "choice") == (0, 1, 1, 1.0, 0, None, None)
    assert _row(shop, "purchase") == (1, 1, 0, 0.0, 0, None, None)


def test_contribution() -> None:
    item = funnel_contribution(STATES[1], DEFINITION)
    assert item.region == "DE"
    assert (item.stage, item.stage_channel) == ("purchase", "ecommerce")
    assert [(a.stage, a.channel) for a in item.arrivals] == [
        ("need", "web"),
        ("search", "ecommerce"),
        ("choice", "ecommerce"),
        ("purchase", "ecommerce"),
    ]
    assert [(s.stage, s.channel, s.seconds) for s in item.stays] == [("need", "web", 1000.0)]
    unstaged = funnel_contribution(STATES[3], DEFINITION)
    assert (unstaged.region, unstaged.stage, unstaged.arrivals) == (UNKNOWN_REGION, None, ())


def test_funnel_is_the_sum_of_contributions() -> None:
    items = [funnel_contribution(s, DEFINITION) for s in STATES]
    assert aggregate_funnel(reversed(items), DEFINITION) == FUNNEL
    assert compute_funnel([], DEFINITION).overall.profiles == 0


def test_json_form() -> None:
    data = FUNNEL.model_dump(mode="json")
    assert data["overall"]["stages"][0] == {
        "stage": "need",
        "owner": "marketing",
        "current": 0,
        "reached": 4,
        "converted": 4,
        "conversion": 1.0,
        "stays": 4,
        "median_seconds": 100.0,
        "p90_seconds": 1000.0,
    }
    assert StageMetrics.model_validate(data["overall"]["stages"][0]).reached == 4


def test_unknown_stage() -> None:
    with pytest.raises(ValueError, match="'sold' is not a stage of journey 'test'"):
        funnel_contribution(_state("DE", ("sold", 0, "web")), DEFINITION)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.5, 7.0),
        ([7.0], 0.9, 7.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),  # lower median for an even count
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([float(v) for v in range(1, 11)], 0.9, 9.0),
        ([float(v) for v in range(1, 12)], 0.9, 10.0),
        ([float(v) for v in range(1, 101)], 0.9, 90.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected
