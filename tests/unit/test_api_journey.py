"""The funnel and moments endpoints and the dashboard's funnel page, on fakeredis.

The read model is filled the way the profile stage fills it: documents built by
``build_profile`` (with the journey) from the facts of generated customers'
events, written with ``profile_upsert`` through ``ReadModelStore.apply``. The
API must answer exactly :func:`cdp.journey.compute_funnel` over those documents.
The same is tested against the real Redis in ``tests/integration/test_api.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cdp.api.access import AccessConfig, AccessControl, DepartmentConfig, hash_key
from cdp.api.app import create_app
from cdp.api.models import FunnelOut, MomentsOut
from cdp.errors import ConfigError
from cdp.journey import Funnel, FunnelSegment, compute_funnel, default_journey, parse_journey
from cdp.serve import ReadModelStore
from cdp.serve.journey import read_moments
from cdp.settings import load_settings
from tests.api_support import ADMIN, MARKETING, SALES, SERVICE, Generated, seed_generated

NS = "tjour"

MINI = parse_journey(
    """\
name: mini
stages:
  - {name: lead, owner: marketing}
  - {name: customer, owner: sales}
rules:
  - {id: lead.visit, stage: lead, events: page_view}
  - {id: customer.order, stage: customer, events: order}
moments:
  - {name: won, to: customer}
""",
    "mini.yaml",
)


def get(client: TestClient, path: str, key: str | None = ADMIN) -> Any:
    return client.get(path, headers={"X-API-Key": key} if key else {})


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def new_store() -> ReadModelStore:
    return ReadModelStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), NS)


@pytest.fixture(scope="module")
def seeded() -> tuple[ReadModelStore, Generated]:
    store = new_store()
    return store, seed_generated(store, 40, seed=5)


@pytest.fixture(scope="module")
def expected(seeded: tuple[ReadModelStore, Generated]) -> Funnel:
    states = [d.journey for d in seeded[1].documents.values() if d.journey is not None]
    return compute_funnel(states, default_journey())


@pytest.fixture(scope="module")
def client(seeded: tuple[ReadModelStore, Generated]) -> Iterator[TestClient]:
    app = create_app(load_settings(namespace=NS), seeded[0])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def segment_of(body: dict[str, Any]) -> FunnelSegment:
    """The wire segment as the reference model (same fields, extra fields refused)."""
    return FunnelSegment.model_validate(body["funnel"])


# ------------------------------------------------------------------------ funnel


def test_funnel_equals_the_reference_computation(client: TestClient, expected: Funnel) -> None:
    body = get(client, "/v1/funnel", SALES).json()
    assert body["journey"] == "b2b" and body["stages"] == list(default_journey().stage_names)
    assert body["segment"] == {"kind": "all", "value": None}
    assert segment_of(body) == expected.overall
    assert body["funnel"]["profiles"] == 40
    assert body["regions"] == sorted(expected.by_region) and len(body["regions"]) >= 2
    assert body["channels"] == sorted(expected.by_channel) and "web" in body["channels"]
    need = body["funnel"]["stages"][0]
    assert set(need) == {
        "stage",
        "owner",
        "current",
        "reached",
        "converted",
        "conversion",
        "stays",
        "median_seconds",
        "p90_seconds",
    }
    assert need["reached"] == 40 and need["conversion"] == need["converted"] / 40
    assert need["median_seconds"] is not None and need["p90_seconds"] >= need["median_seconds"]


def test_every_segment_equals_the_reference(client: TestClient, expected: Funnel) -> None:
    for region, segment in expected.by_region.items():
        body = get(client, f"/v1/funnel?region={region}", MARKETING).json()
        assert body["segment"] == {"kind": "region", "value": region}
        assert segment_of(body) == segment
    for channel, segment in expected.by_channel.items():
        body = get(client, f"/v1/funnel?channel={channel}", SERVICE).json()
        assert body["segment"] == {"kind": "channel", "value": channel}
        assert segment_of(body) == segment
    assert sum(s.profiles for s in expected.by_region.values()) == expected.overall.profiles


@pytest.mark.parametrize("key", [ADMIN, MARKETING, SALES, SERVICE])
def test_every_demo_department_reads_the_reports(client: TestClient, key: str) -> None:
    assert get(client, "/v1/funnel", key).status_code == 200
    assert get(client, "/v1/moments", key).status_code == 200


@pytest.mark.parametrize("path", ["/v1/funnel", "/v1/moments", "/v1/funnel?region=DE"])
def test_reports_need_a_key(client: TestClient, path: str) -> None:
    assert_error(get(client, path, None), 401, "missing_api_key")
    assert_error(get(client, path, "not-a-key"), 401, "invalid_api_key")


def test_unknown_segment_is_404_without_echo(client: TestClient, expected: Funnel) -> None:
    error = assert_error(get(client, "/v1/funnel?region=XYZSECRET"), 404, "segment_not_found")
    assert error["details"] == {"parameter": "region", "available": sorted(expected.by_region)}
    assert "XYZSECRET" not in str(error)
    error = assert_error(get(client, "/v1/funnel?channel=fax"), 404, "segment_not_found")
    assert error["details"]["parameter"] == "channel" and "fax" not in str(error)


@pytest.mark.parametrize(
    "query",
    [
        "region=DE&channel=web",
        "region=",
        "region=D%20E",
        "region=" + "A" * 33,
        "region=anna@example.com",
        "channel=WEB",
        "channel=",
        "channel=web%3B",
    ],
)
def test_bad_segment_parameters_are_422(client: TestClient, query: str) -> None:
    response = get(client, f"/v1/funnel?{query}")
    error = assert_error(response, 422, "invalid_parameters")
    assert error["details"] and "anna@" not in response.text


def test_empty_read_model_gives_an_empty_funnel() -> None:
    with TestClient(create_app(load_settings(namespace=NS), new_store())) as client:
        body = get(client, "/v1/funnel").json()
        assert segment_of(body) == compute_funnel([], default_journey()).overall
        assert body["regions"] == [] and body["channels"] == []
        assert_error(get(client, "/v1/funnel?region=DE"), 404, "segment_not_found")
        moments = get(client, "/v1/moments").json()
        assert moments["total"] == 0
        assert all(m["total"] == 0 and m["by_stage"] == {} for m in moments["moments"])


# ----------------------------------------------------------------------- moments


def test_moments_count_every_occurrence(
    client: TestClient, seeded: tuple[ReadModelStore, Generated]
) -> None:
    body = get(client, "/v1/moments", SERVICE).json()
    assert body["journey"] == "b2b"
    names = [m["name"] for m in body["moments"]]
    assert names == list(dict.fromkeys(m.name for m in default_journey().moments))
    states = [d.journey for d in seeded[1].documents.values() if d.journey is not None]
    totals = Counter(m.name for state in states for m in state.moments)
    assert {m["name"]: m["total"] for m in body["moments"]} == {n: totals[n] for n in names}
    assert body["total"] == sum(totals.values()) > 0
    counted = read_moments(seeded[0])
    for moment in body["moments"]:
        if moment["total"]:
            assert moment["by_stage"] == {
                k: v for k, v in counted[moment["name"]].items() if k != "total"
            }
            assert sum(moment["by_stage"].values()) == moment["total"]
    first_purchase = next(m for m in body["moments"] if m["name"] == "first_purchase")
    assert set(first_purchase["by_stage"]) <= {"purchase", "usage", "recommendation"}


# ----------------------------------------------------------------------- access


def control(reports: list[str]) -> AccessControl:
    config = AccessConfig.model_validate(
        {
            "departments": {
                "desk": {"fields": ["profile_id", "journey.stage"], "reports": reports},
                "bi": {"fields": ["profile_id"]},
            },
            "keys": [
                {"id": "desk-1", "department": "desk", "sha256": hash_key("desk-key-0123456789")},
                {"id": "bi-1", "department": "bi", "sha256": hash_key("bi-key-0123456789ab")},
            ],
        }
    )
    return AccessControl(config)


def test_reports_follow_the_departments_reports_list(
    seeded: tuple[ReadModelStore, Generated],
) -> None:
    app = create_app(load_settings(namespace=NS), seeded[0], access=control(["funnel"]))
    with TestClient(app) as client:
        assert get(client, "/v1/funnel", "desk-key-0123456789").status_code == 200
        error = assert_error(
            get(client, "/v1/moments", "desk-key-0123456789"), 403, "report_not_allowed"
        )
        assert error["details"] == {"report": "moments", "department": "desk"}
        # no reports list: every report (the default)
        assert get(client, "/v1/moments", "bi-key-0123456789ab").status_code == 200
        page = client.get("/dashboard/funnel?key=desk-key-0123456789")
        assert page.status_code == 200 and 'data-testid="funnel-chart"' in page.text
        assert "Not available to the desk department." in page.text  # moments
    app = create_app(load_settings(namespace=NS), seeded[0], access=control([]))
    with TestClient(app) as client:
        assert_error(get(client, "/v1/funnel", "desk-key-0123456789"), 403, "report_not_allowed")
        page = client.get("/dashboard/funnel?key=desk-key-0123456789")
        assert page.status_code == 403 and "funnel-chart" not in page.text
        assert "The funnel is not available to the desk department." in page.text


def test_unknown_report_in_the_access_file_is_refused() -> None:
    with pytest.raises(ValidationError, match="reports"):
        DepartmentConfig.model_validate({"fields": ["*"], "reports": ["pipeline"]})
    assert DepartmentConfig.model_validate({"fields": ["*"]}).reports == ("funnel", "moments")


# ------------------------------------------------------ the journey definition


def test_stages_come_from_the_journey_definition() -> None:
    store = new_store()
    generated = seed_generated(store, 15, seed=3, definition=MINI)
    states = [d.journey for d in generated.documents.values() if d.journey is not None]
    app = create_app(load_settings(namespace=NS), store, journey_definition=MINI)
    with TestClient(app, raise_server_exceptions=False) as client:
        page = get(client, "/v1/stages/lead/profiles?limit=500").json()
        customers = get(client, "/v1/stages/customer/profiles?limit=500").json()
        assert page["stage"] == "lead"
        assert len(page["profiles"]) + len(customers["profiles"]) == len(states)
        error = assert_error(get(client, "/v1/stages/need/profiles"), 422, "invalid_parameters")
        assert "lead, customer" in error["details"][0]["msg"]
        body = get(client, "/v1/funnel").json()
        assert body["journey"] == "mini" and body["stages"] == ["lead", "customer"]
        assert segment_of(body) == compute_funnel(states, MINI).overall
        assert [m["name"] for m in get(client, "/v1/moments").json()["moments"]] == ["won"]
        schema = client.get("/openapi.json").json()
        parameters = schema["paths"]["/v1/stages/{stage}/profiles"]["get"]["parameters"]
        stage = next(p for p in parameters if p["name"] == "stage")
        assert stage["schema"]["enum"] == ["lead", "customer"]
        html = client.get(f"/dashboard/funnel?key={ADMIN}").text
        assert 'data-stage="lead"' in html and 'data-stage="need"' not in html
        customer = next(k for k, d in generated.documents.items() if d.journey is not None)
        profile = client.get(f"/dashboard/profiles/p-{customer}").text
        assert ">lead<" in profile and ">need<" not in profile  # the stage bar


def test_openapi_documents_the_reports(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/funnel", "/v1/moments"} <= set(schema["paths"])
    funnel = schema["paths"]["/v1/funnel"]["get"]
    assert {p["name"] for p in funnel["parameters"]} == {"region", "channel"}
    for status in ("401", "403", "404", "422"):
        assert funnel["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    stage = schema["paths"]["/v1/stages/{stage}/profiles"]["get"]["parameters"][0]
    assert stage["schema"]["enum"] == list(default_journey().stage_names)


def test_metrics_label_the_report_routes(client: TestClient) -> None:
    get(client, "/v1/funnel?region=DE")
    get(client, "/v1/moments")
    text = client.get("/metrics").text
    assert 'route="/v1/funnel",status="200"' in text and 'route="/v1/moments"' in text
    assert "region=DE" not in text


# --------------------------------------------------------------------- dashboard


def test_funnel_page_shows_chart_conversion_time_in_stage_and_moments(
    client: TestClient, expected: Funnel
) -> None:
    page = client.get(f"/dashboard/funnel?key={MARKETING}")
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert '<svg class="chart" data-testid="funnel-chart"' in html
    bars = re.findall(
        r'<g class="stage" data-stage="(\w+)" data-reached="(\d+)" data-current="(\d+)"', html
    )
    assert [(s, int(r), int(c)) for s, r, c in bars] == [
        (m.stage, m.reached, m.current) for m in expected.overall.stages
    ]
    need = expected.overall.stages[0]
    assert f"{need.reached} reached · {need.current} now" in html
    assert f"{need.conversion * 100:.1f} % converted to search" in html
    assert 'data-testid="conversion-recommendation"' not in html  # the last stage
    assert 'data-testid="time-in-stage"' in html and 'data-testid="median-need"' in html
    assert 'data-testid="moment-first_purchase"' in html and "complaint" in html
    assert 'aria-current="page">Funnel<' in html and 'href="/dashboard"' in html
    for region in expected.by_region:
        assert f'href="/dashboard/funnel?region={region}"' in html


def test_funnel_page_segment_selection(client: TestClient, expected: Funnel) -> None:
    region, segment = next(iter(expected.by_region.items()))
    html = client.get(f"/dashboard/funnel?region={region}&key={SERVICE}").text
    assert f"region <strong>{region}</strong> · {segment.profiles} profiles" in html
    assert f'data-testid="region-{region}" aria-current="true"' in html
    need = segment.stages[0]
    assert f'data-stage="need" data-reached="{need.reached}"' in html
    channel = next(iter(expected.by_channel))
    html = client.get(f"/dashboard/funnel?channel={channel}").text  # the cookie
    assert f'data-testid="channel-{channel}" aria-current="true"' in html


def test_funnel_page_errors(client: TestClient) -> None:
    assert client.get("/dashboard/funnel?key=wrong").status_code == 401
    client.cookies.clear()
    assert 'name="key"' in client.get("/dashboard/funnel").text
    missing = client.get(f"/dashboard/funnel?region=ZZ&key={ADMIN}")
    assert missing.status_code == 404 and "no profile of this region" in missing.text
    assert 'data-testid="segments"' in missing.text  # still offers the segments there are
    assert client.get("/dashboard/funnel?region=a%20b").status_code == 422
    assert client.get("/dashboard/funnel?region=DE&channel=web").status_code == 422
    assert client.get("/dashboard/funnel?channel=Web!").status_code == 422


def test_profile_page_shows_stage_owner_score_and_history_of_a_generated_customer(
    client: TestClient, seeded: tuple[ReadModelStore, Generated]
) -> None:
    generated = seeded[1]
    customer = next(
        c for c in generated.dataset.customers if c.depth >= 3 and c.email and c.role == "lead"
    )
    journey = generated.documents[customer.key].journey
    assert journey is not None and journey.history
    html = client.get(f"/dashboard/profiles?email={customer.email}&key={SALES}").text
    assert f'data-testid="current-stage">{journey.stage}<' in html
    assert f'data-testid="owner">{journey.owner}<' in html
    assert f'data-testid="score">{journey.score}' in html
    timeline = html[html.index('data-testid="history"') :]
    timeline = timeline[: timeline.index("</ol>")]
    assert timeline.count("<li>") == len(journey.history)
    for change in journey.history:
        assert f"<strong>{change.to_stage}</strong>" in timeline and change.event_id in timeline
    assert 'data-testid="nav-funnel"' in html and 'data-testid="funnel-link"' in html
    service = client.get(f"/dashboard/profiles?email={customer.email}&key={SERVICE}").text
    assert 'data-testid="score"' not in service and 'data-testid="history"' not in service


# ---------------------------------------------------------------- wire models


def test_wire_models_read_the_answers(client: TestClient, expected: Funnel) -> None:
    """``FunnelOut`` / ``MomentsOut`` (``cdp.api.models``, lenient like the profile models)
    parse the answers, and a newer server's extra fields do not break them."""
    body = get(client, "/v1/funnel?channel=web", SALES).json()
    funnel = FunnelOut.model_validate({**body, "added_later": 1})
    assert funnel.segment.kind == "channel" and funnel.segment.value == "web"
    assert FunnelSegment.model_validate(funnel.funnel.model_dump()) == expected.by_channel["web"]
    moments = MomentsOut.model_validate(get(client, "/v1/moments").json())
    assert moments.moments[0].name == "first_purchase" and moments.total > 0


def test_a_bad_journey_file_stops_the_app_at_start(tmp_path: Path) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text("name: broken\nstages: []\n")
    with pytest.raises(ConfigError, match=r"journey\.yaml"):
        create_app(load_settings(namespace=NS, journey_config=path), new_store())
    path.write_text("name: mini\nstages:\n  - {name: lead, owner: marketing}\n")
    app = create_app(load_settings(namespace=NS, journey_config=path), new_store())
    assert app.state.ctx.journey.stage_names == ("lead",)
