"""The dashboard on fakeredis: sign-in, lookup, the profile 360 page, views, escaping."""

from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
from fastapi.testclient import TestClient

from cdp.api.app import create_app
from cdp.serve import ProfileUpsert, ReadModelStore
from cdp.settings import load_settings
from tests.api_support import ADMIN, SALES, SERVICE, document, seed_person

NS = "tdash"


@pytest.fixture()
def store() -> ReadModelStore:
    store = ReadModelStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), NS)
    seed_person(store, "p-anna", ["email:anna@example.com"], aliases=("p-old",))
    return store


@pytest.fixture()
def client(store: ReadModelStore) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(namespace=NS), store)) as client:
        yield client


def test_login_form_then_cookie(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and 'name="key"' in page.text and "<script" not in page.text
    bad = client.post("/dashboard/login", data={"key": "wrong"})
    assert bad.status_code == 401 and "not valid" in bad.text
    good = client.post("/dashboard/login", data={"key": SALES}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/dashboard"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "sales" in client.get("/dashboard").text
    logout = client.post("/dashboard/logout", follow_redirects=False)
    assert logout.status_code == 303
    client.cookies.clear()
    assert 'name="key"' in client.get("/dashboard/profiles?email=anna@example.com").text


def test_profile_360_by_email_shows_journey_traits_and_sources(client: TestClient) -> None:
    page = client.get(f"/dashboard/profiles?email=Anna@Example.com&key={SALES}")
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="current-stage">search<' in html
    assert (
        'data-testid="owner">marketing<' in html
        and 'data-testid="score">' in html
        and "42.5" in html
    )
    assert html.index("<strong>need<") < html.index("<strong>search<")  # the timeline in order
    assert "from need" in html and "via web" in html and "rule repeat-visits" in html
    assert "first_contact" in html  # moments of truth
    assert 'data-testid="trait-first_name">Anna<' in html and "source_priority" in html
    assert "Not in the sales view." in html  # consent
    assert "qualified" in html  # lead status, a computed trait sales sees
    assert (
        "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    )  # no CDN


def test_form_lookup_and_profile_id_and_alias(client: TestClient) -> None:
    by_form = client.get(f"/dashboard/profiles?type=email&value=anna%40example.com&key={ADMIN}")
    assert by_form.status_code == 200 and "p-anna" in by_form.text
    by_id = client.get("/dashboard/profiles/p-old")  # the cookie from the first request
    assert by_id.status_code == 200 and "merged:" in by_id.text and "p-anna" in by_id.text
    by_type_id = client.get("/dashboard/profiles?type=profile_id&value=p-anna")
    assert by_type_id.status_code == 200


def test_service_view_hides_score_and_consent(client: TestClient) -> None:
    html = client.get(f"/dashboard/profiles/p-anna?key={SERVICE}").text
    assert "42.5" not in html and 'data-testid="score"' not in html
    assert html.count("Not in the service view.") == 1  # consent
    assert "T-4711" in html  # open tickets


def test_not_found_and_bad_input_pages(client: TestClient) -> None:
    missing = client.get(f"/dashboard/profiles?email=nobody@example.com&key={ADMIN}")
    assert missing.status_code == 404 and "no profile for this email" in missing.text
    assert client.get("/dashboard/profiles?email=nope").status_code == 422
    assert client.get("/dashboard/profiles/bad%20id").status_code == 422
    assert client.get("/dashboard/profiles?type=fax&value=1").status_code == 422
    assert client.get("/dashboard/profiles/p-x?key=wrong").status_code == 401


def test_document_content_is_escaped(store: ReadModelStore, client: TestClient) -> None:
    doc = document("p-evil", ["customer_id:E"], first_name="<script>alert(1)</script>")
    doc["journey"]["history"][0]["channel"] = "<img src=x onerror=alert(1)>"
    store.apply([ProfileUpsert("p-evil", 1, json.dumps(doc).encode())])
    html = client.get(f"/dashboard/profiles/p-evil?key={ADMIN}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_profile_without_journey(store: ReadModelStore, client: TestClient) -> None:
    seed_person(store, "p-new", ["customer_id:N"], stage=None)
    html = client.get(f"/dashboard/profiles/p-new?key={ADMIN}").text
    assert "No journey stage recorded" in html
