"""Journey files: the packaged default, custom files, and bad files with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import ConfigError
from cdp.journey import (
    DEFAULT_JOURNEY_RESOURCE,
    JourneyDefinition,
    default_journey,
    load_journey,
    load_journey_or_default,
    parse_journey,
)
from cdp.samples import STAGES


def test_default_journey() -> None:
    journey = default_journey()
    assert journey.name == "b2b"
    assert journey.stage_names == STAGES
    assert [journey.owner(s) for s in STAGES] == [
        "marketing",
        "marketing",
        "sales",
        "sales",
        "service",
        "marketing",
    ]
    assert journey.stage_index("purchase") == 3
    assert "CH" in journey.regions
    assert {m.name for m in journey.moments} >= {"first_purchase", "ticket_resolved", "complaint"}
    assert journey.move_allowed("usage", "need", "need.campaign")
    assert not journey.move_allowed("usage", "need", "need.home_visit")
    assert not journey.move_allowed("purchase", "choice", "choice.sales_call")
    assert journey.move_allowed("need", "purchase", "purchase.order")
    assert journey.qualification.required_identifiers == ("email",)
    assert journey.qualification.required_traits == ("job_title",)
    assert default_journey() is journey  # read once


def test_default_file_is_shipped_next_to_the_module() -> None:
    path = Path(__file__).parents[2] / "cdp" / "journey" / DEFAULT_JOURNEY_RESOURCE
    assert load_journey(path) == default_journey()
    assert load_journey_or_default(None) is default_journey()
    assert load_journey_or_default(path) == default_journey()


def test_definition_is_frozen() -> None:
    with pytest.raises(Exception, match="frozen"):
        default_journey().name = "x"


def test_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        """
name: retail
stages:
  - {name: browse, owner: marketing}
  - {name: buy, owner: sales, description: Paid.}
rules:
  - {id: buy.order, stage: buy, events: order, channel: ecommerce}
  - {id: browse.view, stage: browse, events: [page_view, product_view]}
backward:
  - {from: buy, to: browse, via: browse.view}
scoring: {half_life_days: 7, threshold: 3, weights: {order: 5}}
""",
        encoding="utf-8",
    )
    journey = load_journey(path)
    assert journey.stage_names == ("browse", "buy")
    assert journey.rules[1].events == ("page_view", "product_view")
    assert journey.backward[0].via == ("browse.view",)
    assert journey.scoring.weights == {"order": 5}
    assert journey.qualification.excluded_email_domains == ()
    assert journey.qualification.required_identifiers == ()
    assert journey.qualification.required_traits == ()
    assert isinstance(
        JourneyDefinition.model_validate(journey.model_dump(by_alias=True)), JourneyDefinition
    )


HEAD = """name: bad
stages:
  - {name: need, owner: marketing}
  - {name: buy, owner: sales}
"""


@pytest.mark.parametrize(
    ("body", "line", "path", "problem"),
    [
        pytest.param(
            "rules:\n  - {id: r1, stage: purchse, events: order}\n",
            6,
            "rules[0].stage",
            "unknown stage 'purchse' (stages: need, buy)",
            id="unknown-stage",
        ),
        pytest.param(
            "rules:\n  - id: r1\n    stage: need\n    events: page_view\n    when:\n"
            "      - {field: data.page_category, matches: '(pricing'}\n",
            10,
            "rules[0].when[0].matches",
            "not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "  - {name: need, owner: sales}\n",
            5,
            "stages[2].name",
            "stage 'need' is listed 2 times",
            id="duplicate-stage",
        ),
        pytest.param(
            "rules:\n  - {id: r1, events: order}\n",
            6,
            "rules[0].stage",
            "Field required",
            id="missing-field",
        ),
        pytest.param(
            "scoring:\n  half_life_days: soon\n",
            6,
            "scoring.half_life_days",
            "valid number",
            id="wrong-type",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: [order, odrer]}\n",
            6,
            "rules[0].events",
            "unknown event type 'odrer'",
            id="unknown-event-type",
        ),
        pytest.param(
            "rules:\n  - id: r1\n   stage: buy\n",
            7,
            "",
            "not valid YAML",
            id="yaml-syntax",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: order}\n"
            "  - {id: r1, stage: need, events: call}\n",
            7,
            "rules[1].id",
            "rule id 'r1' is used 2 times",
            id="duplicate-rule-id",
        ),
        pytest.param(
            "rules:\n  - id: r1\n    stage: buy\n    stage: need\n    events: order\n",
            8,
            "",
            "key 'stage' appears twice",
            id="duplicate-key",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: order}\n"
            "backward:\n  - {from: need, to: buy}\n",
            8,
            "backward[0].to",
            "need -> buy is not a backward move",
            id="not-backward",
        ),
        pytest.param(
            "backward:\n  - {from: buy, to: need, via: [nope]}\n",
            6,
            "backward[0].via[0]",
            "no rule 'nope'",
            id="backward-unknown-rule",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: order}\n"
            "regions:\n  CH:\n    disable: [r1, r2]\n",
            9,
            "regions.CH.disable[1]",
            "no rule 'r2' to disable",
            id="region-unknown-rule",
        ),
        pytest.param(
            "regions:\n  ch: {}\n",
            6,
            "regions.ch",
            "String should match pattern",
            id="region-lower-case",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: order,\n"
            "     when: [{field: data.value, gte: 1, lte: 2}]}\n",
            7,
            "rules[0].when[0]",
            "exactly one operator",
            id="two-operators",
        ),
        pytest.param(
            "rules:\n  - id: r1\n    stage: buy\n    events: download\n    when:\n"
            "      - {field: data.page_category, eq: x}\n",
            10,
            "rules[0].when[0].field",
            "'download' has no value 'page_category'",
            id="unknown-data-field",
        ),
        pytest.param(
            "rules:\n  - {id: r1, stage: buy, events: order, chanel: ecommerce}\n",
            6,
            "rules[0].chanel",
            "Extra inputs are not permitted",
            id="extra-field",
        ),
        pytest.param(
            "moments:\n  - {name: m, to: buy, events: order}\n",
            6,
            "moments[0]",
            "either `to`",
            id="moment-both-kinds",
        ),
        pytest.param(
            "moments:\n  - {name: m, to: sold}\n",
            6,
            "moments[0].to",
            "unknown stage 'sold'",
            id="moment-unknown-stage",
        ),
        pytest.param(
            "qualification:\n  excluded_job_titles: [ok, '[unclosed']\n",
            6,
            "qualification.excluded_job_titles[1]",
            "not a valid regular expression",
            id="bad-title-regex",
        ),
        pytest.param(
            "qualification:\n  required_identifiers: email\n",
            6,
            "qualification.required_identifiers",
            "Input should be a valid tuple",
            id="required-identifiers-not-a-list",
        ),
        pytest.param(
            "qualification:\n  required_identifiers: [email, [phone]]\n",
            6,
            "qualification.required_identifiers[1]",
            "Input should be a valid string",
            id="required-identifiers-item-not-a-string",
        ),
        pytest.param(
            "qualification:\n  required_traits: {job_title: true}\n",
            6,
            "qualification.required_traits",
            "Input should be a valid tuple",
            id="required-traits-not-a-list",
        ),
        pytest.param(
            "qualification:\n  required_traits: [job_title, 3]\n",
            6,
            "qualification.required_traits[1]",
            "Input should be a valid string",
            id="required-traits-item-not-a-string",
        ),
        pytest.param(
            "scoring:\n  weights: {order: 1, purchase: 2}\n",
            6,
            "scoring.weights",
            "unknown event type 'purchase'",
            id="weights-unknown-event",
        ),
    ],
)
def test_bad_files(tmp_path: Path, body: str, line: int, path: str, problem: str) -> None:
    file = tmp_path / "journey.yaml"
    file.write_text(HEAD + body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_journey(file)
    message = str(info.value)
    assert message.startswith(f"{file}:{line}: "), message
    assert f": {path}: " in message if path else True, message
    assert problem in message, message


def test_several_problems_are_all_named() -> None:
    structural = HEAD + (
        "rules:\n"
        "  - {id: r1, stage: buy, events: ordr}\n"
        "  - {id: r2, stage: buy, events: order, when: [{field: data.value}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_journey(structural, "j.yaml")
    message = str(info.value)
    assert "j.yaml:6: rules[0].events: unknown event type 'ordr'" in message
    assert "j.yaml:7: rules[1].when[0]: give exactly one operator" in message
    # whole-file checks run once every part is valid on its own
    semantic = HEAD + (
        "rules:\n"
        "  - {id: r1, stage: nope, events: order}\n"
        "  - {id: r1, stage: buy, events: order}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_journey(semantic, "j.yaml")
    message = str(info.value)
    assert "j.yaml:6: rules[0].stage: unknown stage 'nope'" in message
    assert "j.yaml:7: rules[1].id: rule id 'r1' is used 2 times" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "j.yaml: expected a mapping at the top level"),
        ("- a\n- b\n", "j.yaml:1: expected a mapping at the top level"),
        ("name: x\n", "j.yaml:1: stages: Field required"),
        ("name: x\nstages: []\n", "j.yaml:2: stages: Tuple should have at least 1 item"),
    ],
)
def test_bad_top_level(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_journey(text, "j.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_journey(tmp_path / "nope.yaml")


def test_python_construction_checks_semantics_too() -> None:
    with pytest.raises(ValueError, match=r"rules\[0\]\.stage: unknown stage 'x'"):
        JourneyDefinition.model_validate(
            {
                "name": "j",
                "stages": [{"name": "a", "owner": "o"}],
                "rules": [{"id": "r", "stage": "x", "events": "order"}],
            }
        )
