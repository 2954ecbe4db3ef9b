"""Unit tests of the local stack: config rendering, pid files, ports, installs (no servers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp.cli import stack as stack_cli
from cdp.errors import StackError
from cdp.settings import Settings, load_settings
from cdp.stack import LocalStack, process
from cdp.stack.jars import KafkaJars, render_pom
from cdp.stack.kafka import render_log4j_properties, render_server_properties
from cdp.stack.redis import ensure_redis_server, render_redis_conf
from cdp.stack.runner import LoggedRunner, quiet


class FakeRunner:
    """Records commands instead of running them; ``effect`` may simulate their work."""

    def __init__(self, code: int = 0, effect: object = None) -> None:
        self.code = code
        self.calls: list[list[str]] = []
        self.effect = effect

    def __call__(
        self,
        cmd: Sequence[str],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        self.calls.append(list(cmd))
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as log:
            log.write(f"output of {cmd[0]}\nfailure details\n")
        if callable(self.effect):
            self.effect(list(cmd))
        return self.code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "cache_dir": tmp_path / "cache",
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "kafka_controller_port": free_port(),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port some other process (this test) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- configuration rendering ------------------------------------------------------------


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    text = render_server_properties(
        broker_port=39092, controller_port=39093, data_dir=tmp_path / "data"
    )
    props = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:39093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"
    assert props["log.dirs"] == str(tmp_path / "data")


def test_log4j_writes_to_the_server_log(tmp_path: Path) -> None:
    text = render_log4j_properties(tmp_path / "server.log")
    assert f"log4j.appender.file.File={tmp_path / 'server.log'}" in text
    assert "log4j.rootLogger=INFO, file" in text
    assert "RollingFileAppender" in text


def test_redis_conf_runs_in_foreground_with_aof(tmp_path: Path) -> None:
    text = render_redis_conf(
        port=36379,
        data_dir=tmp_path / "data",
        pid_file=tmp_path / "r.pid",
        log_file=tmp_path / "r.log",
    )
    lines = set(text.splitlines())
    assert {"bind 127.0.0.1", "port 36379", "daemonize no", "appendonly yes"} <= lines
    assert f'dir "{tmp_path / "data"}"' in lines
    assert f'logfile "{tmp_path / "r.log"}"' in lines
    assert f'pidfile "{tmp_path / "r.pid"}"' in lines
    assert "set-proc-title no" in lines  # keeps the conf path in /proc/<pid>/cmdline


def test_pom_lists_kafka_and_logging_binding() -> None:
    pom = render_pom("3.9.1")
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<version>3.9.1</version>" in pom
    assert "<artifactId>slf4j-reload4j</artifactId>" in pom
    assert "<packaging>pom</packaging>" in pom


def test_stack_layout_follows_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kafka_version="3.9.1")
    stack = LocalStack(settings)
    state = (tmp_path / "state").resolve()
    assert stack.kafka.config_file == state / "kafka" / "server.properties"
    assert stack.kafka.log_file == state / "kafka" / "server.log"
    assert stack.kafka.pid_file == state / "kafka" / "kafka.pid"
    assert stack.redis.log_file == state / "redis" / "redis.log"
    assert stack.jars.dir == (tmp_path / "cache").resolve() / "kafka-3.9.1"
    assert [p.number for p in stack.kafka.ports] == [
        settings.kafka_port,
        settings.kafka_controller_port,
    ]
    assert stack.log_file("redis") == stack.redis.log_file


def test_config_change_is_detected(tmp_path: Path) -> None:
    stack = LocalStack(make_settings(tmp_path))
    stack.redis.dir.mkdir(parents=True)
    assert not stack.redis.config_is_current()
    stack.redis.write_config()
    assert stack.redis.config_is_current()
    other = LocalStack(make_settings(tmp_path))  # same state dir, other ports
    assert not other.redis.config_is_current()


# --- pid files and process ownership ----------------------------------------------------


def test_pid_file_roundtrip_and_garbage(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert process.read_pid(pid_file) is None
    process.write_pid(pid_file, 1234)
    assert process.read_pid(pid_file) == 1234
    pid_file.write_text("not a pid\n")
    assert process.read_pid(pid_file) is None
    pid_file.write_text("-5")
    assert process.read_pid(pid_file) is None


def test_dead_pid_is_not_running(tmp_path: Path) -> None:
    stack = LocalStack(make_settings(tmp_path))
    stack.kafka.dir.mkdir(parents=True)
    proc = subprocess.Popen(["true"])
    proc.wait()
    process.write_pid(stack.kafka.pid_file, proc.pid)
    assert not process.is_alive(proc.pid)
    assert stack.kafka.running_pid() is None
    assert stack.kafka.status().state == "stopped"


def test_foreign_pid_is_never_ours(tmp_path: Path) -> None:
    """A pid file naming a process we did not start (here: pytest itself) is ignored."""
    stack = LocalStack(make_settings(tmp_path))
    stack.kafka.dir.mkdir(parents=True)
    process.write_pid(stack.kafka.pid_file, os.getpid())
    assert stack.kafka.running_pid() is None
    stack.kafka.stop(quiet)  # must not signal pytest
    assert not stack.kafka.pid_file.exists()


def _fake_java(tmp_path: Path, stack: LocalStack, code: str) -> int:
    """Start a Python process whose argv looks like our broker's: ``java ... <state>/kafka/``."""
    java = tmp_path / "bin" / "java"
    java.parent.mkdir(exist_ok=True)
    java.symlink_to(sys.executable)
    stack.kafka.dir.mkdir(parents=True, exist_ok=True)
    pid = process.spawn_detached(
        [str(java), "-c", code, str(stack.kafka.config_file)],
        cwd=stack.kafka.dir,
        output=stack.kafka.out_file,
    )
    process.write_pid(stack.kafka.pid_file, pid)
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 10
    while str(stack.kafka.config_file).encode() not in cmdline.read_bytes():  # not exec'd yet
        assert time.monotonic() < deadline, "the fake broker did not start"
        time.sleep(0.01)
    return pid


def test_our_process_is_found_and_stopped(tmp_path: Path) -> None:
    stack = LocalStack(make_settings(tmp_path))
    pid = _fake_java(tmp_path, stack, "import time; time.sleep(60)")
    assert stack.kafka.running_pid() == pid
    stack.kafka.pid_file.unlink()
    assert stack.kafka.running_pid() == pid  # found via /proc without the pid file
    stack.down()
    assert not process.is_alive(pid)
    assert not stack.kafka.pid_file.exists()


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    stack = LocalStack(make_settings(tmp_path))
    pid = _fake_java(
        tmp_path,
        stack,
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    )
    stack.kafka.stop_timeout = 1.0
    messages: list[str] = []
    time.sleep(0.5)  # let it install the handler
    stack.kafka.stop(messages.append)
    assert not process.is_alive(pid)
    assert any(message.startswith("Killed kafka") for message in messages)


# --- ports and settings -----------------------------------------------------------------


def test_port_probes(listener: int) -> None:
    assert process.port_in_use(listener)
    assert process.port_answers(listener)
    port = free_port()
    assert not process.port_in_use(port)
    assert not process.port_answers(port)


@pytest.mark.parametrize(
    ("field", "setting"),
    [
        ("kafka_bootstrap", "CDP_KAFKA_BOOTSTRAP"),
        ("kafka_controller_port", "CDP_KAFKA_CONTROLLER_PORT"),
        ("redis_url", "CDP_REDIS_URL"),
    ],
)
def test_port_taken_by_another_process_fails_naming_the_setting(
    tmp_path: Path, listener: int, field: str, setting: str
) -> None:
    value: object = {
        "kafka_bootstrap": f"127.0.0.1:{listener}",
        "kafka_controller_port": listener,
        "redis_url": f"redis://127.0.0.1:{listener}/0",
    }[field]
    runner = FakeRunner()
    stack = LocalStack(make_settings(tmp_path, **{field: value}), runner=runner)
    with pytest.raises(StackError, match=rf"port {listener} .*{setting}"):
        stack.up()
    assert runner.calls == []  # failed before fetching or installing anything
    status = {st.name: st for st in stack.status()}
    assert any(str(listener) in st.detail for st in status.values())


def test_settings_the_stack_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="three different ports"):
        LocalStack(
            make_settings(
                tmp_path, kafka_controller_port=16379, redis_url="redis://127.0.0.1:16379/0"
            )
        ).up()
    with pytest.raises(StackError, match="CDP_KAFKA_BOOTSTRAP"):
        LocalStack(make_settings(tmp_path, kafka_bootstrap="kafka.example.com:9092")).up()
    with pytest.raises(StackError, match="CDP_REDIS_URL"):
        LocalStack(make_settings(tmp_path, redis_url="redis://cache.example.com:6379/0")).up()


# --- redis-server install ---------------------------------------------------------------


def test_installed_redis_is_used_as_is(tmp_path: Path) -> None:
    runner = FakeRunner()
    path = ensure_redis_server(
        quiet, runner, tmp_path / "install.log", which=lambda name: f"/usr/bin/{name}"
    )
    assert path == "/usr/bin/redis-server"
    assert runner.calls == []


def test_missing_redis_is_installed_with_apt_as_root(tmp_path: Path) -> None:
    installed: set[str] = set()
    runner = FakeRunner(
        effect=lambda cmd: installed.add("redis-server") if "install" in cmd else None
    )

    def which(name: str) -> str | None:
        return f"/usr/bin/{name}" if name == "apt-get" or name in installed else None

    messages: list[str] = []
    path = ensure_redis_server(
        messages.append, runner, tmp_path / "install.log", which=which, euid=lambda: 0
    )
    assert path == "/usr/bin/redis-server"
    assert runner.calls == [["apt-get", "update"], ["apt-get", "install", "-y", "redis-server"]]
    assert any("Installing redis-server" in message for message in messages)


def test_missing_redis_without_root_tells_how_to_install(tmp_path: Path) -> None:
    runner = FakeRunner()
    with pytest.raises(StackError, match="sudo apt-get install -y redis-server"):
        ensure_redis_server(
            quiet,
            runner,
            tmp_path / "install.log",
            which=lambda name: "/usr/bin/apt-get" if name == "apt-get" else None,
            euid=lambda: 1000,
        )
    assert runner.calls == []


def test_missing_redis_without_apt(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="apt-get is not available"):
        ensure_redis_server(quiet, FakeRunner(), tmp_path / "i.log", which=lambda name: None)


def test_failed_apt_shows_its_log(tmp_path: Path) -> None:
    runner = FakeRunner(code=100)
    with pytest.raises(StackError, match=r"(?s)apt-get update.*exit code 100.*failure details"):
        ensure_redis_server(
            quiet,
            runner,
            tmp_path / "install.log",
            which=lambda name: "/usr/bin/apt-get" if name == "apt-get" else None,
            euid=lambda: 0,
        )
    assert runner.calls == [["apt-get", "update"]]


# --- Kafka jar cache --------------------------------------------------------------------


def _maven_effect(version: str, jars: int = 3) -> Callable[[list[str]], None]:
    def effect(cmd: list[str]) -> None:
        out = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        out.mkdir(parents=True)
        (out / f"kafka_2.13-{version}.jar").write_bytes(b"jar")
        for i in range(jars - 1):
            (out / f"dep-{i}.jar").write_bytes(b"jar")

    return effect


@pytest.fixture
def mvn_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cdp.stack.jars.shutil.which", lambda name: f"/usr/bin/{name}")


@pytest.mark.usefixtures("mvn_on_path")
def test_jars_are_fetched_once(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "cache", "3.9.1")
    runner = FakeRunner(effect=_maven_effect("3.9.1"))
    messages: list[str] = []
    jars.ensure(messages.append, runner)
    assert jars.is_complete()
    assert len(list(jars.libs.glob("*.jar"))) == 3
    assert runner.calls[0][1:5] == ["-B", "-f", str(jars.pom), "dependency:copy-dependencies"]
    assert "-DincludeScope=runtime" in runner.calls[0]
    assert jars.pom.read_text() == render_pom("3.9.1")
    assert any("Fetching Kafka 3.9.1" in message for message in messages)
    jars.ensure(quiet, runner)
    assert len(runner.calls) == 1
    assert jars.classpath == f"{jars.libs}/*"


@pytest.mark.usefixtures("mvn_on_path")
def test_failed_fetch_leaves_no_marker_and_shows_maven_log(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "cache", "3.9.1")
    with pytest.raises(StackError, match=r"(?s)exit code 1.*failure details"):
        jars.ensure(quiet, FakeRunner(code=1))
    assert not jars.is_complete()
    assert not jars.marker.exists()
    assert not (jars.dir / "libs.partial").exists()


@pytest.mark.usefixtures("mvn_on_path")
def test_interrupted_fetch_is_retried(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "cache", "3.9.1")
    jars.libs.mkdir(parents=True)  # jars copied, but no marker: the fetch was interrupted
    (jars.libs / "kafka_2.13-3.9.1.jar").write_bytes(b"half")
    runner = FakeRunner(effect=_maven_effect("3.9.1"))
    jars.ensure(quiet, runner)
    assert len(runner.calls) == 1
    assert jars.is_complete()
    assert (jars.libs / "kafka_2.13-3.9.1.jar").read_bytes() == b"jar"


def test_missing_maven_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cdp.stack.jars.shutil.which", lambda name: None)
    with pytest.raises(StackError, match="mvn"):
        KafkaJars(tmp_path / "cache", "3.9.1").ensure(quiet, FakeRunner())


def test_kafka_data_dir_is_formatted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cdp.stack.jars.shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr("cdp.stack.kafka.shutil.which", lambda name: f"/usr/bin/{name}")
    stack = LocalStack(make_settings(tmp_path))
    fetch = _maven_effect(stack.settings.kafka_version)

    def effect(cmd: list[str]) -> None:
        if "dependency:copy-dependencies" in cmd:
            fetch(cmd)
        elif cmd[-1] == "random-uuid":
            with (stack.kafka.dir / "cluster-id.txt").open("a") as out:
                out.write("log4j:WARN noise\nMkU3OEVBNTcwNTJENDM2Qk\n")
        elif "format" in cmd:
            (stack.kafka.data_dir / "meta.properties").write_text("cluster.id=x\n")

    runner = FakeRunner(effect=effect)
    stack.kafka.prepare(quiet, runner)
    assert [call[-1] for call in runner.calls[1:]] == ["random-uuid", str(stack.kafka.config_file)]
    assert runner.calls[2][-4:-2] == ["-t", "MkU3OEVBNTcwNTJENDM2Qk"]
    assert stack.kafka.config_is_current()
    assert stack.kafka.log4j_file.is_file()
    stack.kafka.prepare(quiet, runner)
    assert len(runner.calls) == 3  # neither fetched nor formatted again
    cmd = stack.kafka.command()
    assert cmd[0] == "/usr/bin/java"
    assert f"-Xmx{stack.settings.kafka_heap}" in cmd
    assert cmd[-2:] == ["kafka.Kafka", str(stack.kafka.config_file)]


# --- helpers ----------------------------------------------------------------------------


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert process.tail(log, 5) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert process.tail(log, 3) == "line 99997\nline 99998\nline 99999"
    assert process.tail(log, 0) == ""


def test_logged_runner_writes_the_log_and_returns_the_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    code = LoggedRunner(quiet)(["sh", "-c", "echo hello; echo oops >&2; exit 3"], log_file=log)
    assert code == 3
    assert log.read_text().splitlines() == [
        "$ sh -c echo hello; echo oops >&2; exit 3",
        "hello",
        "oops",
    ]


def test_file_lock_is_reentrant_across_calls(tmp_path: Path) -> None:
    waited: list[bool] = []
    with process.file_lock(tmp_path / "a.lock", on_wait=lambda: waited.append(True)):
        pass
    with process.file_lock(tmp_path / "a.lock", on_wait=lambda: waited.append(True)):
        pass
    assert waited == []


# --- command line -----------------------------------------------------------------------


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(tmp_path)
    monkeypatch.setattr(stack_cli, "get_settings", lambda: settings)
    return settings


def test_cli_status_of_a_stopped_stack_exits_1(cli_settings: Settings) -> None:
    result = CliRunner().invoke(stack_cli.app, ["status"])
    assert result.exit_code == 1
    assert "kafka" in result.stdout and "redis" in result.stdout
    assert "stopped" in result.stdout


def test_cli_logs_without_log(cli_settings: Settings) -> None:
    result = CliRunner().invoke(stack_cli.app, ["logs", "kafka", "-n", "5"])
    assert result.exit_code == 1
    assert "no log yet" in result.stderr


def test_cli_logs_tail(cli_settings: Settings) -> None:
    log = LocalStack(cli_settings).log_file("redis")
    log.parent.mkdir(parents=True)
    log.write_text("a\nb\nc\n")
    result = CliRunner().invoke(stack_cli.app, ["logs", "redis", "-n", "2"])
    assert result.exit_code == 0
    assert result.stdout == "b\nc\n"


def test_cli_up_reports_errors_on_stderr(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{listener}/0")
    monkeypatch.setattr(stack_cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(stack_cli.app, ["up"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "CDP_REDIS_URL" in result.stderr


def test_cli_help_mentions_exit_code() -> None:
    result = CliRunner().invoke(stack_cli.app, ["status", "--help"])
    assert result.exit_code == 0
    assert "Exit code 0" in result.stdout
