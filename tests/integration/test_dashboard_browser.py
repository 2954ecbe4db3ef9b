"""End to end in a real browser: generated customers -> Kafka -> worker -> Redis -> API ->
dashboard in Debian's headless chromium (Playwright).

About 50 generated customers (``cdp.samples.generate``) are produced to the channel
topics and processed by a real worker subprocess; when every event is in a profile, a
real uvicorn server serves the dashboard. Chromium signs in, looks up a customer who
got to stage 4 or beyond by email and must see their true stage (``STAGES[depth]``)
and the stage history; then the funnel page must chart every stage with the counts
the read model holds. Screenshots go to ``test-artifacts/dashboard/`` (git-ignored).

Needs ``/usr/bin/chromium`` (``CDP_CHROMIUM`` to use another): ``make test`` installs
Debian's package first (``make browser``); Playwright's own browser downloads are not
used. A missing browser fails the test with that hint; it is never skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdp.api.app import create_app
from cdp.journey import default_journey
from cdp.producer import EventProducer
from cdp.samples import STAGES, Customer, Dataset, generate
from cdp.serve.journey import read_funnel
from cdp.serve.store import ReadModelStore
from cdp.settings import PROJECT_ROOT, Settings, load_settings
from cdp.topics import ensure_topics
from cdp.worker_process import WorkerProcess, settings_env
from tests.api_support import SALES, serving
from tests.pipeline_support import wait_converged

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("CDP_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "dashboard"
CUSTOMERS = 50
CONVERGE_TIMEOUT = 120.0
"""Upper bound for the worker to put every event into a profile (typically 15-30 s)."""
STABLE_FOR = 1.5
"""The read model must not change for this long once every event is in a profile."""


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The browser binary, or a failure that says how to install it (never a skip).

    Checked before the pipeline starts, so a missing browser fails at once."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Debian's chromium is missing ({CHROMIUM} is not an executable): the browser test "
            "needs it. Run `make browser` (apt-get install chromium; `make test` does this "
            "first) or set CDP_CHROMIUM to a chromium binary.",
            pytrace=False,
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(CUSTOMERS, 8, seed=2027, duplicate_rate=0.02, late_rate=0.05)


@pytest.fixture(scope="module")
def pipeline(
    chromium: Path,
    stack_settings: Settings,
    dataset: Dataset,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """A fresh namespace whose read model holds the dataset, processed by a real worker."""
    settings = load_settings(namespace="t" + uuid.uuid4().hex[:10], metrics_port=0)
    ensure_topics(settings)
    env = settings_env(settings, CDP_LOG_LEVEL="warning", CDP_METRICS_PORT="0")
    worker = WorkerProcess(env, tmp_path_factory.mktemp("browser") / "worker.log").start()
    try:
        with EventProducer(settings) as producer:
            for event in dataset.events:
                producer.send(event)
            producer.flush()
        with ReadModelStore.from_settings(settings) as store:
            wait_converged(
                store,
                dataset.distinct_events,
                worker,
                stable_for=STABLE_FOR,
                ceiling=CONVERGE_TIMEOUT,
                poll=0.3,
            )
        yield settings
    finally:
        worker.stop()
        with ReadModelStore.from_settings(settings) as store:
            store.wipe()


@pytest.fixture(scope="module")
def api_url(pipeline: Settings) -> Iterator[str]:
    with serving(create_app(pipeline)) as url:
        yield url


def _customer_in_one_profile(
    dataset: Dataset, store: ReadModelStore
) -> tuple[Customer, dict[str, Any]]:
    """A customer who got to stage 4+ (depth >= 3), has an email, and whose events all
    ended in the profile their email finds (so the true depth decides the stage)."""
    events = Counter(dataset.truth.values())
    for customer in dataset.customers:
        if customer.depth < 3 or not customer.email or customer.role != "lead":
            continue
        profile_id = store.lookup("email:" + customer.email.lower())
        raw = None if profile_id is None else store.get_profile(profile_id)
        if raw is None:
            continue
        document = json.loads(raw)
        if document["event_count"] == events[customer.key]:
            return customer, document
    raise AssertionError("no generated customer with depth >= 3 and an email in one profile")


def test_lookup_by_email_and_funnel_in_chromium(
    chromium: Path, dataset: Dataset, pipeline: Settings, api_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with ReadModelStore.from_settings(pipeline) as store:
        customer, document = _customer_in_one_profile(dataset, store)
        funnel = read_funnel(store, default_journey())
    assert customer.email is not None
    stage = STAGES[customer.depth]
    history = document["journey"]["history"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)

            # sign in with the sales key (its view has the whole journey)
            page.goto(f"{api_url}/dashboard")
            page.get_by_label("API key").fill(SALES)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("department")).to_have_text("sales")

            # look the customer up by email, spelled as a person might type it
            page.get_by_label("identifier type").select_option("email")
            page.get_by_label("identifier value").fill(f"  {customer.email.upper()} ")
            page.get_by_role("button", name="Look up").click()
            expect(page.get_by_test_id("profile-id")).to_have_text(document["profile_id"])
            expect(page.get_by_test_id("current-stage")).to_have_text(stage)
            expect(page.get_by_test_id("stage")).to_have_text(stage)
            expect(page.get_by_test_id("owner")).to_have_text(default_journey().owner(stage))
            expect(page.get_by_test_id("score")).to_contain_text(str(document["journey"]["score"]))
            entries = page.get_by_test_id("history").locator("li")
            expect(entries).to_have_count(len(history))
            shown = [entries.nth(i).locator("strong").inner_text() for i in range(len(history))]
            assert shown == [h["to_stage"] for h in history]
            assert shown[-1] == stage
            for index, change in enumerate(history):
                expect(entries.nth(index)).to_contain_text(change["event_id"])
                expect(entries.nth(index)).to_contain_text(f"via {change['channel']}")
            page.screenshot(path=str(ARTIFACTS / "profile.png"), full_page=True)

            # the funnel page: every stage charted with the read model's counts
            page.get_by_test_id("nav-funnel").click()
            chart = page.get_by_test_id("funnel-chart")
            expect(chart).to_be_visible()
            bars = chart.locator("g.stage")
            expect(bars).to_have_count(len(STAGES))
            charted = [
                (
                    bars.nth(i).get_attribute("data-stage"),
                    int(bars.nth(i).get_attribute("data-reached") or -1),
                    int(bars.nth(i).get_attribute("data-current") or -1),
                )
                for i in range(len(STAGES))
            ]
            assert charted == [(m.stage, m.reached, m.current) for m in funnel.overall.stages]
            assert funnel.overall.profiles >= CUSTOMERS * 0.9
            for metrics in funnel.overall.stages:
                expect(chart.get_by_test_id(f"counts-{metrics.stage}")).to_have_text(
                    f"{metrics.reached} reached · {metrics.current} now"
                )
            expect(chart.get_by_test_id("conversion-need")).to_contain_text("converted to search")
            expect(page.get_by_test_id("time-in-stage")).to_be_visible()
            expect(page.get_by_test_id("moments")).to_contain_text("first_purchase")
            page.screenshot(path=str(ARTIFACTS / "funnel.png"), full_page=True)

            # a region segment, then back to the profile 360 page
            region = document["journey"]["region"]
            page.get_by_test_id(f"region-{region}").click()
            expect(page.get_by_test_id("segment")).to_contain_text(f"region {region}")
            expect(page.get_by_test_id(f"region-{region}")).to_have_attribute(
                "aria-current", "true"
            )
            need = funnel.by_region[region].stages[0]
            expect(chart.locator('g.stage[data-stage="need"]')).to_have_attribute(
                "data-reached", str(need.reached)
            )
            page.screenshot(path=str(ARTIFACTS / f"funnel-region-{region}.png"), full_page=True)
            page.get_by_test_id("nav-profiles").click()
            expect(page.get_by_label("identifier value")).to_be_visible()
        finally:
            browser.close()
    for name in ("profile.png", "funnel.png", f"funnel-region-{region}.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000, name
