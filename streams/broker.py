"""A real single-node Kafka broker for laptops and tests, without Docker.

The Apache Kafka broker and its dependencies come from Maven Central (``mvn
dependency:copy-dependencies``, once per version, into ``Settings.cache_dir``). The broker
runs in KRaft mode (no ZooKeeper) as one process that is both controller and broker, its
storage under ``Settings.kafka_dir``. ``tokenhub kafka up|down|status`` and the pytest
fixture both use :class:`LocalKafka`.

Given ``scram_users``, the broker also opens a ``SASL_PLAINTEXT`` listener on ``sasl_port``
that authenticates with SCRAM-SHA-512 (users created when the storage is formatted), beside
the unchanged ``PLAINTEXT`` one: the security tests point clients at it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings
from streams.topics import ALL_TOPICS, TopicSpec

_POM = Path(__file__).with_name("broker_pom.xml")
_LOG4J = Path(__file__).with_name("broker_log4j.properties")
#: The one SASL mechanism the local broker's SASL listener offers.
SCRAM_MECHANISM = "SCRAM-SHA-512"
_SASL_LISTENER = "SASL_PLAINTEXT"


class BrokerError(RuntimeError):
    """The local broker cannot be fetched, started or reached; the message says what to do."""


@dataclass(frozen=True)
class BrokerStatus:
    """What ``tokenhub kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    topics: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.running:
            return f"Kafka is down (would listen on {self.bootstrap})."
        topics = ", ".join(self.topics) or "no topics"
        return f"Kafka is up on {self.bootstrap} (pid {self.pid}); topics: {topics}."


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) is not alive for our purposes.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url without padding, as Kafka makes them.

    One in 64 such strings starts with ``-``, which the storage tool's argument parser takes
    for an option (``--cluster-id: expected one argument``); Kafka's own ``Uuid.randomUuid``
    draws again in that case, and so does this.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """Fetch, format, start, stop and inspect a single-node KRaft broker."""

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Iterable[TopicSpec] = ALL_TOPICS,
        extra_properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None,
        sasl_port: int | None = None,
    ) -> None:
        if scram_users and sasl_port is None:
            raise ValueError("scram_users needs a sasl_port for the SASL listener")
        self.settings = settings
        self.topics = tuple(topics)
        self.extra_properties = dict(extra_properties or {})
        self.scram_users = dict(scram_users or {})
        self.sasl_port = sasl_port if self.scram_users else None
        self.dir = settings.kafka_dir
        self.data_dir = self.dir / "data"
        self.pid_file = self.dir / "broker.pid"
        self.log_file = self.dir / "broker.log"
        self.properties_file = self.dir / "server.properties"

    # --- jars -------------------------------------------------------------------------
    @property
    def libs(self) -> Path:
        return self.settings.kafka_libs_dir

    def _jars_ready(self) -> bool:
        return (self.libs / ".complete").exists()

    def fetch(self) -> Path:
        """Download the broker jars from Maven Central once; later calls reuse them."""
        if self._jars_ready():
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven ('mvn') is not on PATH; it fetches the Kafka broker from Maven Central. "
                "Install it (Debian/Ubuntu: apt-get install -y maven) and run again."
            )
        if shutil.which("java") is None:
            raise BrokerError(
                "Java is not on PATH; install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)."
            )
        self.libs.mkdir(parents=True, exist_ok=True)
        version = self.settings.kafka_version
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(_POM),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise BrokerError(
                f"Fetching Kafka {version} from Maven Central failed; check network access to "
                "Maven Central and TOKENHUB_KAFKA_VERSION. mvn said:\n  " + "\n  ".join(tail)
            )
        (self.libs / ".complete").write_text(version)
        return self.libs

    # --- lifecycle ------------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.settings.kafka_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1" if os.environ.get("TOKENHUB_FAST_JVM") else "-server",
            f"-Dlog4j.configuration=file:{_LOG4J}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    @property
    def sasl_bootstrap(self) -> str | None:
        """Where SCRAM clients connect (``None`` without ``scram_users``)."""
        if self.sasl_port is None:
            return None
        return f"{self.settings.kafka_host}:{self.sasl_port}"

    def _listener_properties(self) -> dict[str, str]:
        s = self.settings
        host = s.kafka_host
        listeners = (
            f"PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:{s.kafka_controller_port}"
        )
        advertised = f"PLAINTEXT://{host}:{s.kafka_port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.sasl_port is None:
            return {
                "listeners": listeners,
                "advertised.listeners": advertised,
                "listener.security.protocol.map": protocols,
            }
        sasl = f"{_SASL_LISTENER}://{host}:{self.sasl_port}"
        listener = _SASL_LISTENER.lower()
        return {
            "listeners": f"{listeners},{sasl}",
            "advertised.listeners": f"{advertised},{sasl}",
            "listener.security.protocol.map": f"{protocols},{_SASL_LISTENER}:{_SASL_LISTENER}",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            # SCRAM credentials live in the cluster metadata (added at format time), so the
            # login module needs no password here: none is written to server.properties.
            f"listener.name.{listener}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }

    def _write_properties(self) -> None:
        s = self.settings
        host = s.kafka_host
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{s.kafka_controller_port}",
            **self._listener_properties(),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": "6",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.check.interval.ms": "60000",
            "message.max.bytes": "2097152",
        }
        props.update(self.extra_properties)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        scram = [
            arg
            for name, password in self.scram_users.items()
            for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]")
        ]
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties_file),
                *scram,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            for password in self.scram_users.values():
                output = output.replace(password, "***")  # never echo a secret
            raise BrokerError(f"Formatting Kafka storage in {self.data_dir} failed:\n{output}")

    def up(self, *, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker (harmless if it is already up) and create the topics."""
        s = self.settings
        if self._pid() is not None:
            self.wait_ready(timeout=timeout)
            self.create_topics()
            return self.status()
        ports = (s.kafka_port, s.kafka_controller_port, *filter(None, [self.sasl_port]))
        for port in ports:
            if _port_open(s.kafka_host, port):
                raise BrokerError(
                    f"Port {port} on {s.kafka_host} is already taken by another process. Stop it, "
                    "or choose other ports with TOKENHUB_KAFKA_PORT / TOKENHUB_KAFKA_CONTROLLER_PORT."
                )
        self.fetch()
        self._write_properties()
        self._format()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.properties_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        try:
            self.wait_ready(timeout=timeout, process=process)
        except BrokerError:
            self.down()
            raise
        self.create_topics()
        return self.status()

    def wait_ready(
        self, *, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        """Block until the broker answers metadata requests."""
        deadline = time.monotonic() + timeout
        admin = self.admin()
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerError(
                    f"The Kafka broker exited with code {process.returncode}; last lines of "
                    f"{self.log_file}:\n{self._log_tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except KafkaException:
                pass
            time.sleep(0.3)
        raise BrokerError(
            f"Kafka did not answer on {self.settings.bootstrap} within {timeout:.0f}s; see {self.log_file}."
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def admin(self) -> AdminClient:
        # Connection failures surface as exceptions; librdkafka's own log lines would only
        # repeat them on stderr while the broker starts.
        return AdminClient(self.settings.librdkafka(log_level=2))

    def create_topics(self, topics: Iterable[TopicSpec] | None = None) -> None:
        """Create missing topics with their declared partitions and configuration."""
        wanted = tuple(topics) if topics is not None else self.topics
        admin = self.admin()
        existing = set(admin.list_topics(timeout=10).topics)
        new = [
            NewTopic(
                t.name, num_partitions=t.partitions, replication_factor=1, config=dict(t.config)
            )
            for t in wanted
            if t.name not in existing
        ]
        if not new:
            return
        for name, future in admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise BrokerError(f"Could not create topic {name}: {error}") from error

    def down(self, *, timeout: float = 30.0) -> bool:
        """Stop the broker; returns False when it was not running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self._pid()
        bootstrap = self.settings.bootstrap
        if pid is None:
            return BrokerStatus(False, None, bootstrap)
        try:
            topics = tuple(
                sorted(
                    t for t in self.admin().list_topics(timeout=5).topics if not t.startswith("__")
                )
            )
        except KafkaException:
            topics = ()
        return BrokerStatus(True, pid, bootstrap, topics)
