"""Starts and stops Heard's local platform: Kafka, a MongoDB-wire server, Mailpit, Prometheus, the services.

`make up` and the end-to-end tests both go through `Stack`, so the tests start the platform
exactly the way a developer does. Every process is started in its own session, its PID is
written under `.heard/<profile>/run/`, and `down` stops only those PIDs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("HEARD_CACHE_DIR", Path.home() / ".cache" / "heard"))
KAFKA_POM = ROOT / "infra" / "kafka" / "pom.xml"
SERVICES = ("intake", "routing", "notify", "analytics", "web")
# Default ports (before a profile's offset); web serves the people's pages and calls the others, so it starts last.
SERVICE_PORTS = {"intake": 8081, "routing": 8082, "notify": 8083, "analytics": 8084, "web": 8080}
# Mailpit: a real SMTP server with a web UI and an HTTP API, where every e-mail of a local platform lands.
MAILPIT_MODULE = "github.com/axllent/mailpit"
MAILPIT_VERSION = "v1.33.1"


class StackError(RuntimeError):
    """Something the platform needs is missing or did not start; the message says what."""


@dataclass(frozen=True)
class Profile:
    """Ports and state folder of one platform instance; `test` runs beside a developer's `dev`."""

    name: str
    port_offset: int

    @property
    def kafka_port(self) -> int:
        return 9092 + self.port_offset

    @property
    def kafka_controller_port(self) -> int:
        return 9093 + self.port_offset

    @property
    def mongodb_port(self) -> int:
        return 27017 + self.port_offset

    @property
    def prometheus_port(self) -> int:
        return 9090 + self.port_offset

    @property
    def mailpit_smtp_port(self) -> int:
        return 1025 + self.port_offset

    @property
    def mailpit_http_port(self) -> int:
        return 8025 + self.port_offset

    def service_port(self, service: str) -> int:
        return SERVICE_PORTS[service] + self.port_offset


PROFILES = {"dev": Profile("dev", 0), "test": Profile("test", 10000)}


def selected_profile(name: str) -> Profile:
    """A named profile; HEARD_PORT_OFFSET moves all its ports, so two checkouts can each run `make up`."""
    offset = os.environ.get("HEARD_PORT_OFFSET")
    base = PROFILES[name]
    return base if offset is None else Profile(base.name, int(offset))


def _digest(*paths: Path) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


def _run(argv: list[str], **kwargs: object) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def install_kafka() -> Path:
    """Copies the pinned Kafka jars from Maven Central (via ~/.m2) into the cache, once."""
    libs = CACHE / f"kafka-{_digest(KAFKA_POM)}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is needed to fetch Kafka from Maven Central: apt-get install maven")
    if libs.exists():
        shutil.rmtree(libs)
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
    )
    (libs / ".complete").touch()
    return libs


def install_mailpit() -> Path:
    """Builds the pinned Mailpit with `go install`, once, into the cache."""
    gobin = CACHE / f"mailpit-{MAILPIT_VERSION}"
    binary = gobin / "mailpit"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise StackError("Go is needed to build Mailpit, the local SMTP server (apt-get install golang-go)")
    gobin.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(gobin), "GOFLAGS": "-buildvcs=false"}
    _run(["go", "install", f"{MAILPIT_MODULE}@{MAILPIT_VERSION}"], cwd=gobin, env=env)
    return binary


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(packages)} missing: run `sudo apt-get install {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def install_prometheus() -> None:
    """Installs Debian's prometheus package (which brings promtool) when either is missing."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        _apt_install("prometheus")


def install_chromium() -> None:
    """Debian's Chromium for the page tests (Playwright drives it; it never downloads a browser itself)."""
    if not shutil.which("chromium"):
        _apt_install("chromium", "fonts-dejavu-core")


def mongodb_mode() -> str:
    """`external` when MONGODB_URI is set, `mongod` when one is on the PATH, else `nx-27017`.

    nx-27017 (PyPI, in the virtualenv) is a MongoDB-wire server on SQLite: it answers Heard's queries from
    indexes and applies each command under one lock per database, so a conditional update is atomic. The
    README's "Which MongoDB-wire server" section has the measurements that chose it over FerretDB 1.x.
    """
    if os.environ.get("MONGODB_URI"):
        return "external"
    if shutil.which("mongod"):
        return "mongod"
    return "nx-27017"


def install(*, prometheus: bool = True, browser: bool = False) -> None:
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        install_kafka()
    install_mailpit()
    if prometheus:
        install_prometheus()
    if browser:
        install_chromium()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Stack:
    """One platform instance: its processes, ports, logs and data under `.heard/<profile>`."""

    profile: Profile
    extra_env: Mapping[str, str] = field(default_factory=dict)
    mongodb_server: str = field(default_factory=mongodb_mode)

    @property
    def state(self) -> Path:
        return ROOT / ".heard" / self.profile.name

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def kafka_bootstrap(self) -> str:
        return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{self.profile.kafka_port}"

    @property
    def mongodb_uri(self) -> str:
        return os.environ.get("MONGODB_URI") or f"mongodb://127.0.0.1:{self.profile.mongodb_port}/"

    def service_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.profile.service_port(service)}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.profile.prometheus_port}"

    @property
    def mailpit_url(self) -> str:
        """Mailpit's web UI; its API is under /api/v1."""
        return f"http://127.0.0.1:{self.profile.mailpit_http_port}"

    @property
    def notify_intake_token(self) -> str:
        """A token this platform's intake issues to its notify at start-up (kept in the state folder)."""
        path = self.state / "notify-intake-token"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("heard_notify_" + uuid.uuid4().hex + uuid.uuid4().hex)
        return path.read_text().strip()

    # -- processes -------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start_process(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
    ) -> int:
        if (running := self.pid(name)) is not None:
            return running
        if port is not None and port_open(port):
            raise StackError(
                f"cannot start {name}: port {port} is already used by a process this stack did not start "
                "(another `make up`, or a leftover process)"
            )
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd or ROOT,
                start_new_session=True,
            )
        self._pid_file(name).write_text(str(process.pid))
        return process.pid

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        pid = self.pid(name)
        self._pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        self._signal_group(pid, signal.SIGKILL)

    def kill_process(self, name: str) -> None:
        """SIGKILL, as a crash would; the PID file stays so `restart` can reuse its name."""
        pid = self.pid(name)
        if pid is not None:
            self._signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    def wait_until(self, what: str, check: object, timeout: float, log_name: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            if self.pid(log_name) is None and log_name != "-":
                break
            time.sleep(0.25)
        tail = self.tail_log(log_name)
        raise StackError(f"{what} did not become ready within {timeout:.0f}s. Last log lines:\n{tail}")

    def tail_log(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- components ------------------------------------------------------------------

    def start_kafka(self) -> None:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            return
        libs = install_kafka()
        kafka_state = self.state / "kafka"
        data = kafka_state / "data"
        data.mkdir(parents=True, exist_ok=True)
        p = self.profile
        properties = kafka_state / "server.properties"
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{p.kafka_controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{p.kafka_port},CONTROLLER://127.0.0.1:{p.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{p.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Services create their topics explicitly with the right partition count.
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        java = [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={ROOT / 'infra' / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            f"{libs}/*",
        ]
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            _run(
                # `=` form: one id in 64 starts with "-", which the tool would otherwise read as an option.
                [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", f"--config={properties}"],
                stdout=subprocess.DEVNULL,
            )
        self.start_process("kafka", [*java, "kafka.Kafka", str(properties)], port=p.kafka_port)
        self.wait_until("Kafka", lambda: port_open(p.kafka_port), 90, "kafka")

    def start_mongodb(self) -> None:
        mode = self.mongodb_server
        if mode == "external":
            return
        data = self.state / "mongodb"
        data.mkdir(parents=True, exist_ok=True)
        port = self.profile.mongodb_port
        if mode == "mongod":
            argv = ["mongod", "--dbpath", str(data), "--port", str(port), "--bind_ip", "127.0.0.1"]
        else:
            argv = [
                sys.executable,
                "-m",
                "heard_devstack.nx_store",
                "--data-dir",
                str(data),
                "--host",
                "127.0.0.1",
                "-p",
                str(port),
                "--log-file",
                str(self.logs / "nx-27017.log"),
                "--pid-file",
                str(self.run_dir / "nx-27017.server"),
            ]
        self.start_process("mongodb", argv, port=port)
        self.wait_until("MongoDB", lambda: port_open(port), 60, "mongodb")

    def create_topics(self) -> None:
        """Topics exist before any consumer joins, so nothing is read from a half-made topic."""
        from heard_shared.topics import ensure_topics_sync

        ensure_topics_sync(self.kafka_bootstrap)

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"HEARD_{service.upper()}_"
        env = {
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            f"{prefix}MONGODB_URI": self.mongodb_uri,
            f"{prefix}HTTP_PORT": str(self.profile.service_port(service)),
            # Log lines reach the log files as they happen, not when the process exits.
            "PYTHONUNBUFFERED": "1",
        }
        if self.profile.name != "dev":
            env[f"{prefix}MONGODB_DATABASE"] = f"heard_{service}_{self.profile.name}"
        if service == "intake":
            # A laptop or test platform needs no contact-encryption secret; production refuses to start without.
            env[f"{prefix}ENVIRONMENT"] = os.environ.get(f"{prefix}ENVIRONMENT", "development")
            env[f"{prefix}NOTIFY_TOKEN"] = self.notify_intake_token
            env[f"{prefix}PUBLIC_BASE_URL"] = self.service_url("intake")
        if service == "web":
            for backend in ("intake", "notify", "routing"):
                env[f"{prefix}{backend.upper()}_URL"] = self.service_url(backend)
            env[f"{prefix}TRANSPARENCY_URL"] = f"{self.service_url('analytics')}/"
        if service == "notify":
            env |= {
                f"{prefix}ENVIRONMENT": os.environ.get(f"{prefix}ENVIRONMENT", "development"),
                f"{prefix}SMTP_HOST": "127.0.0.1",
                f"{prefix}SMTP_PORT": str(self.profile.mailpit_smtp_port),
                f"{prefix}INTAKE_URL": self.service_url("intake"),
                f"{prefix}INTAKE_TOKEN": self.notify_intake_token,
                f"{prefix}PUBLIC_BASE_URL": self.service_url("notify"),
                f"{prefix}STAFF_URL_TEMPLATE": self.service_url("intake") + "/v1/staff/feedback/{feedback_id}",
                f"{prefix}CONTACTS_FILE": str(ROOT / "config" / "contacts.yaml"),
                f"{prefix}ORGANISATION_FILE": str(ROOT / "config" / "organisation.yaml"),
            }
        return {**env, **{k: v for k, v in self.extra_env.items() if k.startswith(prefix)}}

    def start_service(self, service: str, name: str | None = None, port: int | None = None) -> None:
        """Starts one service; `name`/`port` let tests run extra replicas beside the first."""
        name = name or service
        env = self.service_env(service)
        if port is not None:
            env[f"HEARD_{service.upper()}_HTTP_PORT"] = str(port)
        port = int(env[f"HEARD_{service.upper()}_HTTP_PORT"])
        self.start_process(name, [sys.executable, "-m", f"heard_{service}"], env=env, port=port)
        self.wait_until(f"{name} /readyz", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 90, name)

    def start_prometheus(self) -> None:
        install_prometheus()
        prom_state = self.state / "prometheus"
        prom_state.mkdir(parents=True, exist_ok=True)
        targets = ", ".join(f"'127.0.0.1:{self.profile.service_port(s)}'" for s in SERVICES)
        rules = ROOT / "deploy" / "prometheus" / "rules"
        (prom_state / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            f"rule_files:\n  - '{rules}/*.yml'\n"
            "scrape_configs:\n  - job_name: heard\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )
        port = self.profile.prometheus_port
        self.start_process(
            "prometheus",
            [
                "prometheus",
                f"--config.file={prom_state / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_state / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            port=port,
        )
        self.wait_until("Prometheus", lambda: http_ok(f"{self.prometheus_url}/-/ready"), 60, "prometheus")

    def start_mailpit(self) -> None:
        binary = install_mailpit()
        data = self.state / "mailpit"
        data.mkdir(parents=True, exist_ok=True)
        p = self.profile
        self.start_process(
            "mailpit",
            [
                str(binary),
                f"--smtp=127.0.0.1:{p.mailpit_smtp_port}",
                f"--listen=127.0.0.1:{p.mailpit_http_port}",
                f"--database={data / 'mailpit.db'}",
                "--max=200000",
                "--smtp-auth-accept-any",
                "--smtp-auth-allow-insecure",
                "--disable-version-check",
                "--quiet",
            ],
            port=p.mailpit_smtp_port,
        )
        self.wait_until("Mailpit", lambda: http_ok(f"{self.mailpit_url}/api/v1/info"), 60, "mailpit")

    # -- whole platform ---------------------------------------------------------------

    def up_infra(self) -> None:
        self.start_mongodb()
        self.start_kafka()
        self.create_topics()
        self.start_mailpit()

    def up(self, *, prometheus: bool = True) -> None:
        self.up_infra()
        for service in SERVICES:
            self.start_service(service)
        if prometheus:
            self.start_prometheus()

    def down(self) -> None:
        if not self.run_dir.exists():
            return
        # Services first so they can flush and commit, then the infrastructure they use.
        names = sorted(p.stem for p in self.run_dir.glob("*.pid"))
        infra = {"kafka", "mongodb", "prometheus", "mailpit"}
        for name in [n for n in names if n not in infra] + [n for n in names if n in infra]:
            self.stop_process(name)

    def status(self) -> dict[str, int | None]:
        if not self.run_dir.exists():
            return {}
        return {p.stem: self.pid(p.stem) for p in sorted(self.run_dir.glob("*.pid"))}


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
