"""Fault injection on a stack of its own: every disturbed run ends equal to an undisturbed one.

The faults restart servers, so they run on a second local stack (other ports,
its own state directory) that no other test uses. One undisturbed run of the
dataset is the reference; each disturbed run sends the same events into a
fresh namespace, injects its fault in the middle of the load and must end
with the same canonical read-model dump (``ReadModelStore.dump``):

* **Redis restarted empty** during load: the worker waits out the outage
  (``cdp.serve.outage``) and goes on; an operator's ``cdp rebuild`` repairs what
  the wiped Redis lost, run either right away while the worker is still busy or
  once it caught up;
* **Kafka broker restarted** during load: producers and the worker recover on
  their own, no manual step;
* **poison messages** at a steady rate (one in 20 records is not a valid
  event): every one is dead-lettered with its reason, the rest is unaffected;
* **input left paused** inside the worker (Faust stops fetching partitions and
  never resumes them): the worker's watchdog logs its state, restarts the
  process, and the restarted worker catches up.

The worker SIGKILL case is in ``test_profiles_pipeline.py``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from cdp.deadletter import DeadLetter
from cdp.in_order import RESTART_LINE
from cdp.producer import EventProducer
from cdp.samples import Dataset, generate
from cdp.serve.rebuild import rebuild
from cdp.serve.store import ReadModelStore
from cdp.settings import PROJECT_ROOT, Settings, load_settings
from cdp.stack import LocalStack
from cdp.topic_reader import read_messages
from cdp.topics import Topics, ensure_topics
from cdp.worker_process import WorkerProcess, settings_env
from tests.pipeline_support import wait_converged

pytestmark = pytest.mark.integration

CUSTOMERS = int(os.environ.get("CDP_TEST_FAULT_CUSTOMERS", "300"))
BASE_PORT = int(os.environ.get("CDP_TEST_FAULT_PORT", "29092"))
"""Kafka broker port of the fault stack; controller +1, Redis +2."""
POISON_EVERY = 20


@dataclass
class Run:
    """One run: its namespace settings, final dump and wall time."""

    settings: Settings
    dump: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second local stack (Kafka + Redis) that only these tests start, stop and restart."""
    state = tmp_path_factory.mktemp("fault-stack")
    settings = load_settings(
        kafka_bootstrap=f"127.0.0.1:{BASE_PORT}",
        kafka_controller_port=BASE_PORT + 1,
        redis_url=f"redis://127.0.0.1:{BASE_PORT + 2}/0",
        state_dir=state,
        kafka_heap="512m",
        metrics_port=0,
    )
    stack = LocalStack(settings)
    stack.up(progress=print)
    try:
        yield stack
    finally:
        stack.down(purge=True)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(CUSTOMERS, 10, seed=2031, duplicate_rate=0.03, late_rate=0.05)


def _run(
    stack: LocalStack,
    dataset: Dataset,
    logs: Path,
    disturb: Callable[[Settings], None] | None = None,
    repair: Callable[[Settings, ReadModelStore], None] | None = None,
    poison: bool = False,
    env: dict[str, str] | None = None,
) -> Run:
    """Send the dataset through a worker in a fresh namespace.

    ``disturb`` runs mid-load, ``repair`` after the last event was sent.
    """
    settings = load_settings(
        **{**stack.settings.model_dump(), "namespace": "f" + uuid.uuid4().hex[:10]}
    )
    ensure_topics(settings)
    worker = WorkerProcess(
        settings_env(settings, CDP_LOG_LEVEL="warning", **(env or {})),
        logs / f"worker-{settings.namespace}.log",
    ).start()
    started = time.monotonic()
    middle = len(dataset.events) // 2
    poisoned = 0
    raw = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    try:
        with EventProducer(settings) as producer:
            for index, event in enumerate(dataset.events):
                producer.send(event)
                if poison and index % POISON_EVERY == 0:
                    channel = Topics(settings.namespace).channels[poisoned % 4]
                    raw.produce(channel, key=b"poison", value=_poison(poisoned))
                    poisoned += 1
                if disturb is not None and index == middle:
                    producer.flush()
                    _wait_for_profiles(settings, worker)  # disturb the worker mid-work
                    disturb(settings)
        assert raw.flush(60) == 0
        with ReadModelStore.from_settings(settings) as store:
            if repair is not None:
                repair(settings, store)
            dump = wait_converged(
                store, dataset.distinct_events, worker, stall=180, ceiling=900, settings=settings
            )
        if poison:
            _check_dead_letters(settings, poisoned)
        return Run(settings, dump, time.monotonic() - started)
    finally:
        worker.stop()


def _wait_for_profiles(settings: Settings, worker: WorkerProcess, timeout: float = 120) -> None:
    """Wait until the worker has written profiles to the read model."""
    deadline = time.monotonic() + timeout
    with ReadModelStore.from_settings(settings) as store:
        while not store.dump()["profiles"]:
            assert worker.running, worker.log_tail()
            assert time.monotonic() < deadline, "the worker wrote no profile"
            time.sleep(0.2)


def _poison(n: int) -> bytes:
    """Records no producer SDK would write: garbage, an unknown schema id, truncated Avro."""
    kinds = [
        b"not an event at all",
        b"\x00\x00\x00\x7f\xff" + b"\x02" * 20,  # wire format, unknown schema id
        b"\x00\x00\x00\x00\x01",  # wire format header without a body
    ]
    return kinds[n % len(kinds)]


def _check_dead_letters(settings: Settings, poisoned: int) -> None:
    """Every poison record is in the dead-letter topic with its bytes and a reason."""
    deadline = time.monotonic() + 60
    while True:
        letters = [
            DeadLetter.from_kafka(m.key(), m.value(), m.headers())
            for m in read_messages(settings, Topics(settings.namespace).deadletter)
            if m.key() == b"poison"
        ]
        if len(letters) >= poisoned or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(letters) == poisoned
    assert {letter.source.value for letter in letters} == {_poison(n) for n in range(3)}
    reasons = Counter(letter.reason.value for letter in letters)
    print(f"dead letters by reason: {dict(reasons)}")
    assert all(letter.processor == "ingest" for letter in letters)


@pytest.fixture(scope="module")
def undisturbed(
    fault_stack: LocalStack, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    run = _run(fault_stack, dataset, tmp_path_factory.mktemp("undisturbed"))
    print(f"\nundisturbed: {dataset.distinct_events} events in {run.seconds:.1f}s")
    return run


@pytest.mark.parametrize("rebuild_when", ["during load", "after catch-up"])
def test_redis_restarted_empty_during_load(
    fault_stack: LocalStack, dataset: Dataset, undisturbed: Run, tmp_path: Path, rebuild_when: str
) -> None:
    def restart_redis_empty(_settings: Settings) -> None:
        redis_service = fault_stack.service("redis")
        redis_service.stop(print)
        shutil.rmtree(fault_stack.state_dir / "redis" / "data", ignore_errors=True)
        time.sleep(3)  # the worker meets the outage
        fault_stack.up(progress=print)

    def operator_rebuild(settings: Settings, store: ReadModelStore) -> None:
        if rebuild_when == "after catch-up":
            _wait_until_stable(store, seconds=10)
        stats = rebuild(settings)  # the operator's repair
        print(f"rebuilt {stats.profiles} profiles {rebuild_when}")

    run = _run(
        fault_stack,
        dataset,
        tmp_path,
        disturb=restart_redis_empty,
        repair=operator_rebuild,
    )
    assert run.dump == undisturbed.dump
    log = (tmp_path / f"worker-{run.settings.namespace}.log").read_text(errors="replace")
    assert "Redis unavailable" in log, "the worker never met the outage"
    assert "Traceback" not in log


def _wait_until_stable(store: ReadModelStore, seconds: float, timeout: float = 300) -> None:
    """Wait until the read model did not change for ``seconds``."""
    deadline = time.monotonic() + timeout
    previous, since = store.dump(), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the read model never settled"
        time.sleep(1)
        current = store.dump()
        if current != previous:
            previous, since = current, time.monotonic()


def test_kafka_broker_restarted_during_load(
    fault_stack: LocalStack, dataset: Dataset, undisturbed: Run, tmp_path: Path
) -> None:
    def restart_kafka(_settings: Settings) -> None:
        fault_stack.service("kafka").stop(print)
        time.sleep(3)
        fault_stack.up(progress=print)

    run = _run(fault_stack, dataset, tmp_path, disturb=restart_kafka)
    assert run.dump == undisturbed.dump


def test_poison_messages_are_dead_lettered_and_the_rest_is_unaffected(
    fault_stack: LocalStack, dataset: Dataset, undisturbed: Run, tmp_path: Path
) -> None:
    run = _run(fault_stack, dataset, tmp_path, poison=True)
    assert run.dump == undisturbed.dump
    print(f"\nwith poison: {run.seconds:.1f}s, undisturbed {undisturbed.seconds:.1f}s")


PAUSE_WEB_ONCE = '''
"""Fault injection: the first event of a run pauses the web channel's partitions for good."""
import gc
import os
from pathlib import Path

import faust

from cdp.processors import processor

MARKER = Path(os.environ["CDP_TEST_PAUSE_MARKER"])


@processor()
def pause_web_once(event):
    """Once per run: Faust stops fetching the web channel and never resumes it."""
    if not MARKER.exists():
        MARKER.touch()
        app = next(o for o in gc.get_objects() if isinstance(o, faust.App))
        consumer = app.consumer
        consumer.pause_partitions(
            {tp for tp in consumer.assignment() if tp.topic.endswith(".channel.web")}
        )
    return None
'''


def _with_fault_processor(tmp_path: Path, name: str, source: str, **markers: str) -> dict[str, str]:
    """The worker environment for a run with the processor module ``source`` (a fault
    injection) next to the example processors; ``markers`` name files in ``tmp_path``."""
    folder = tmp_path / "fault_processors"
    folder.mkdir()
    (folder / f"{name}.py").write_text(source)
    env = {"CDP_PROCESSORS_PATH": f"{PROJECT_ROOT / 'processors'}:{folder}"}
    env.update({setting: str(tmp_path / file) for setting, file in markers.items()})
    return env


SLOW_REBALANCE_ONCE = '''
"""Fault injection: once per run, mid-load, a rebalance whose end runs late.

The 1,000th event this processor sees makes the consumer rejoin its group (a rebalance
while the fetch loop runs, with full agent queues); that rebalance then waits 2 s after
its seek, as on a busy machine, before Faust empties the queues and resumes the flow.
"""
import asyncio
import gc
import logging
import os
from pathlib import Path

import faust
from faust.transport.consumer import Consumer

from cdp.processors import processor

MARKER = Path(os.environ["CDP_TEST_SLOW_MARKER"])
log = logging.getLogger("fault")
_seek = Consumer.perform_seek
_state = {"rejoin": False, "seen": 0}


async def _slow_perform_seek(self):
    await _seek(self)
    if _state["rejoin"] and self.flow_active and not MARKER.exists():  # recovery's seek
        MARKER.touch()
        before = dict(self._cdp_in_order._next)
        await asyncio.sleep(2.0)
        after = self._cdp_in_order._next
        moved = sum(after.get(tp, 0) - before.get(tp, 0) for tp in after)
        log.warning("fault: %d records delivered between the seek and the resume", moved)


Consumer.perform_seek = _slow_perform_seek


async def _rejoin(consumer):
    aiokafka_consumer = consumer._thread._ensure_consumer()

    async def request():
        aiokafka_consumer._coordinator.request_rejoin()

    await consumer._thread.call_thread(request)


@processor()
def slow_rebalance_once(event):
    """Computes nothing; triggers the rebalance once."""
    _state["seen"] += 1
    if _state["seen"] == 1000 and not MARKER.exists():
        _state["rejoin"] = True
        app = next(o for o in gc.get_objects() if isinstance(o, faust.App))
        asyncio.get_running_loop().create_task(_rejoin(app.consumer))
    return None
'''


def test_a_rebalance_in_the_middle_of_a_load_loses_nothing(
    fault_stack: LocalStack, dataset: Dataset, undisturbed: Run, tmp_path: Path
) -> None:
    """Two Faust hazards of a rebalance under load: records delivered between its seek
    and its emptying of the agents' queues were thrown away, and its wait for every
    message handed to the agents to be acknowledged hung on messages no agent would
    acknowledge any more. Records left unfinished after it still cost one restart by
    the watchdog at times (docs/operations.md), shortened here to 30 s."""
    env = _with_fault_processor(
        tmp_path, "slow_rebalance_once", SLOW_REBALANCE_ONCE, CDP_TEST_SLOW_MARKER="slowed"
    )
    env.update(CDP_INPUT_STALL_WARN_S="10", CDP_INPUT_STALL_RESTART_S="30")
    run = _run(fault_stack, dataset, tmp_path, env=env)
    assert (tmp_path / "slowed").exists(), "the fault was not injected"
    log = (tmp_path / f"worker-{run.settings.namespace}.log").read_text(errors="replace")
    notes = [line for line in log.splitlines() if "fault:" in line or RESTART_LINE in line]
    print("\n" + "\n".join(notes))
    assert run.dump == undisturbed.dump
    assert "Traceback" not in log


def test_input_left_paused_is_restarted_and_caught_up(
    fault_stack: LocalStack, dataset: Dataset, undisturbed: Run, tmp_path: Path
) -> None:
    env = _with_fault_processor(
        tmp_path, "pause_web_once", PAUSE_WEB_ONCE, CDP_TEST_PAUSE_MARKER="paused"
    )
    env.update(CDP_INPUT_STALL_WARN_S="5", CDP_INPUT_STALL_RESTART_S="15")

    def paused_already(_settings: Settings) -> None:  # the second half arrives while paused
        assert (tmp_path / "paused").exists(), "the fault was not injected"

    run = _run(fault_stack, dataset, tmp_path, disturb=paused_already, env=env)
    assert run.dump == undisturbed.dump
    log = (tmp_path / f"worker-{run.settings.namespace}.log").read_text(errors="replace")
    assert ".channel.web[" in log and " paused next=" in log, "the state was not logged"
    assert RESTART_LINE in log, "the worker was not restarted"
    assert "Traceback" not in log
