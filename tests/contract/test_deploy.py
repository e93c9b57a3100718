"""Deployment artefacts keep the properties operators rely on.

Parses the Dockerfiles, docker-compose.yml, the Prometheus/Alertmanager/Grafana configuration it mounts and the
kustomize tree under deploy/k8s; no Docker, no cluster, no network. Overlays are rendered by a small
in-process applier of their patches, so the checks do not need the kustomize binary; when `kubectl` is on the
PATH the real `kubectl kustomize` must build every overlay too.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = {"intake": 8081, "routing": 8082, "notify": 8083, "analytics": 8084, "web": 8080}
SERVICE_NAMES = sorted(SERVICES)
# The pages (web) call the other services' HTTP APIs and keep only staff sessions in MongoDB: no Kafka.
KAFKA_SERVICES = sorted(set(SERVICES) - {"web"})
OVERLAYS = ["dev", "production"]
WORKLOAD_KINDS = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
ROUTING_FILE_VARS = ("HEARD_ROUTING_SLA_POLICY_FILE", "HEARD_ROUTING_ORGANISATION_FILE", "HEARD_ROUTING_RULES_FILE")
PINNED_TAG = re.compile(r"^[^:@\s]+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$")


# -- helpers ----------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def compose() -> dict[str, Any]:
    data = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def compose_service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict)
    return service


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path (relative to the repository root) -> container path, for the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[source] = target
    return mounts


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test", [])
    return " ".join(test) if isinstance(test, list) else str(test)


def image_tag(image: str) -> str:
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""


def dockerfile(service: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "services" / service / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for token in shlex.split(arguments):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(v) for v in value]


@cache
def base_kustomization() -> dict[str, Any]:
    data = load_yaml(K8S / "base" / "kustomization.yaml")
    assert isinstance(data, dict)
    return data


@cache
def base_documents() -> tuple[dict[str, Any], ...]:
    return tuple(doc for name in base_kustomization()["resources"] for doc in load_all_yaml(K8S / "base" / name))


def service_documents(service: str) -> dict[str, dict[str, Any]]:
    documents = load_all_yaml(K8S / "base" / f"{service}.yaml")
    kinds = [doc["kind"] for doc in documents]
    assert sorted(kinds) == sorted(WORKLOAD_KINDS), f"{service}.yaml holds {kinds}"
    return {doc["kind"]: doc for doc in documents}


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container = containers[0]
    assert isinstance(container, dict)
    return container


def generator_literals(kustomization: dict[str, Any], name: str) -> dict[str, str]:
    for generator in kustomization.get("configMapGenerator", []):
        if generator["name"] == name:
            return dict(literal.split("=", 1) for literal in generator.get("literals", []))
    return {}


def replace_at(document: dict[str, Any], pointer: str, value: Any) -> None:
    """JSON-patch `replace`: the path must already exist, as kustomize requires."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in pointer.lstrip("/").split("/")]
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        assert int(last) < len(node), f"{pointer} does not exist"
        node[int(last)] = value
    else:
        assert last in node, f"{pointer} does not exist in {document['kind']} {document['metadata']['name']}"
        node[last] = value


def render_overlay(overlay: str) -> list[dict[str, Any]]:
    """The base's workloads with the overlay's JSON patches, ConfigMap literals and image tags applied."""
    kustomization = load_yaml(K8S / "overlays" / overlay / "kustomization.yaml")
    documents = copy.deepcopy(list(base_documents()))
    for resource in kustomization.get("resources", []):
        if resource != "../../base":  # the overlay's own manifests (the dev cluster's Mailpit)
            documents += load_all_yaml(K8S / "overlays" / overlay / resource)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        operations = yaml.safe_load(patch["patch"])
        matched = [
            doc
            for doc in documents
            if doc["kind"] == target.get("kind", doc["kind"])
            and re.fullmatch(target.get("name", ".*"), doc["metadata"]["name"])
        ]
        assert matched, f"{overlay}: patch target {target} matches nothing in the base"
        for doc in matched:
            for operation in operations:
                assert operation["op"] == "replace", "only replace patches are rendered here"
                replace_at(doc, operation["path"], operation["value"])
    images = {image["name"]: image for k in (base_kustomization(), kustomization) for image in k.get("images", [])}
    literals = {**generator_literals(base_kustomization(), "heard-platform")}
    literals.update(generator_literals(kustomization, "heard-platform"))
    for doc in documents:
        if doc["kind"] == "Deployment":
            container = only_container(doc)
            override = images.get(container["image"])
            if override is not None:
                container["image"] = f"{override.get('newName', container['image'])}:{override.get('newTag', 'latest')}"
    documents.append({"kind": "ConfigMap", "metadata": {"name": "heard-platform"}, "data": literals})
    return documents


def rendered(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in documents:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name}")


# -- Dockerfiles --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_dockerfile_builds_from_pinned_python_slim(service: str) -> None:
    instructions = dockerfile(service)
    args = {}
    for keyword, arguments in instructions:
        if keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            args[name] = default
    images = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            image = arguments.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image))
    assert images, "no FROM"
    for image in images:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), f"{service}: base image {image}"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_dockerfile_installs_pinned_requirements_then_packages_without_deps(service: str) -> None:
    runs = [arguments for keyword, arguments in dockerfile(service) if keyword == "RUN"]
    requirements = [run for run in runs if "pip install" in run and "-r" in run.split()]
    assert requirements, f"{service}: no `pip install -r`"
    assert any(
        "shared/requirements.txt" in run and f"services/{service}/requirements.txt" in run for run in requirements
    )
    packages = [run for run in runs if "pip install" in run and "--no-deps" in run.split()]
    assert any("./shared" in run.split() and f"./services/{service}" in run.split() for run in packages), packages


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_dockerfile_runs_the_service_as_non_root(service: str) -> None:
    stage = final_stage(dockerfile(service))
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, f"{service}: final stage has no USER"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), f"{service}: USER {users[-1]} is not numeric"
    assert int(users[-1].split(":")[0]) != 0

    port = SERVICES[service]
    prefix = f"HEARD_{service.upper()}_"
    assert [arguments for keyword, arguments in stage if keyword == "EXPOSE"] == [str(port)]
    env = dockerfile_env(stage)
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert env.get(f"{prefix}HTTP_PORT", str(port)) == str(port)
    assert [exec_form(arguments) for keyword, arguments in stage if keyword == "CMD"] == [
        ["python", "-m", f"heard_{service}"]
    ]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_dockerfile_healthcheck_uses_python_on_healthz(service: str) -> None:
    checks = [arguments for keyword, arguments in final_stage(dockerfile(service)) if keyword == "HEALTHCHECK"]
    assert len(checks) == 1, f"{service}: expected one HEALTHCHECK"
    command = exec_form(checks[0].split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    compile(command[2], f"{service} HEALTHCHECK", "exec")


def test_routing_image_ships_config() -> None:
    stage = final_stage(dockerfile("routing"))
    copies = [arguments.split() for keyword, arguments in stage if keyword == "COPY"]
    assert any("config/" in parts and parts[-1].rstrip("/") == "/app/config" for parts in copies)
    env = dockerfile_env(stage)
    for variable in ROUTING_FILE_VARS:
        assert env[variable].startswith("/app/config/")


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".heard", ".git", "tests", "bench"} <= patterns
    assert not {"shared", "services", "config"} & patterns


# -- docker-compose.yml -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_compose_builds_each_service_from_its_own_dockerfile(service: str) -> None:
    spec = compose_service(service)
    build = spec["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"services/{service}/Dockerfile"
    assert (ROOT / build["dockerfile"]).is_file()
    port = SERVICES[service]
    assert f"{port}:{port}" in [str(p) for p in spec["ports"]]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_compose_service_waits_for_healthy_kafka_and_mongodb(service: str) -> None:
    spec = compose_service(service)
    depends_on = spec["depends_on"]
    for dependency in ("kafka", "mongodb") if service in KAFKA_SERVICES else ("mongodb", "intake"):
        assert depends_on[dependency]["condition"] == "service_healthy"
    check = healthcheck_text(spec)
    assert f"{SERVICES[service]}/readyz" in check or f"{SERVICES[service]}/healthz" in check


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_compose_service_environment_points_at_the_compose_network(service: str) -> None:
    env = compose_env(compose_service(service))
    prefix = f"HEARD_{service.upper()}_"
    assert all(key.startswith(prefix) for key in env), f"{service}: variable outside {prefix}: {sorted(env)}"
    if service in KAFKA_SERVICES:
        assert env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env[f"{prefix}MONGODB_URI"].startswith("mongodb://mongodb:27017/")
    assert "replicaSet=rs0" in env[f"{prefix}MONGODB_URI"]
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert env.get(f"{prefix}HTTP_PORT", str(SERVICES[service])) == str(SERVICES[service])


def test_compose_kafka_is_apache_kafka_4_in_kraft_mode() -> None:
    kafka = compose_service("kafka")
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = compose_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised
    assert any(listener.split("://")[1].startswith("localhost:") for listener in advertised), "no host listener"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka["healthcheck"]


def test_compose_mongodb_is_an_initiated_one_node_replica_set() -> None:
    mongodb = compose_service("mongodb")
    assert re.fullmatch(r"mongo:8\.\d+(\.\d+)?", mongodb["image"]), mongodb["image"]
    command = mongodb["command"] if isinstance(mongodb["command"], list) else shlex.split(mongodb["command"])
    assert command[command.index("--replSet") + 1] == "rs0"
    check = healthcheck_text(mongodb)
    assert "rs.initiate(" in check
    assert "rs0" in check
    assert "mongodb:27017" in check


def test_compose_images_are_pinned_and_data_lives_in_named_volumes() -> None:
    services = compose()["services"]
    declared = set(compose().get("volumes") or {})
    for name, spec in services.items():
        if "build" not in spec:
            tag = image_tag(spec["image"])
            assert tag and tag != "latest", f"{name}: image {spec['image']} is not pinned"
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("kafka", "mongodb", "prometheus", "grafana"):
        named = [v for v in services[name].get("volumes", []) if not v.startswith((".", "/"))]
        assert named, f"{name} keeps its data in no named volume"
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", services["prometheus"]["image"])
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", services["alertmanager"]["image"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", services["grafana"]["image"])


def test_compose_bind_mounts_exist() -> None:
    for name, spec in compose()["services"].items():
        for source in bind_mounts(spec):
            path = ROOT / source
            if path.suffix in {".yml", ".yaml"}:
                assert path.is_file(), f"{name}: {source} is missing"
            else:
                assert path.parent.is_dir(), f"{name}: {source} has no parent folder"


def test_compose_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    prometheus = compose_service("prometheus")
    mounts = bind_mounts(prometheus)
    assert mounts["./deploy/prometheus/prometheus.compose.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./deploy/prometheus/rules"] == "/etc/prometheus/rules"
    config = load_yaml(ROOT / "deploy" / "prometheus" / "prometheus.compose.yml")
    assert "/etc/prometheus/rules/*.yml" in config["rule_files"]
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for service, port in SERVICES.items():
        assert f"{service}:{port}" in targets
    alertmanagers = {
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    }
    assert alertmanagers == {"alertmanager:9093"}


def test_alertmanager_config_routes_only_to_defined_receivers() -> None:
    mounts = bind_mounts(compose_service("alertmanager"))
    assert mounts["./deploy/alertmanager/alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"
    config = load_yaml(ROOT / "deploy" / "alertmanager" / "alertmanager.yml")
    receivers = {receiver["name"] for receiver in config["receivers"]}

    def walk(route: dict[str, Any]) -> None:
        if "receiver" in route:
            assert route["receiver"] in receivers
        for child in route.get("routes", []):
            walk(child)

    assert config["route"]["receiver"] in receivers
    walk(config["route"])


def test_grafana_provisions_prometheus_and_the_dashboards_folder() -> None:
    mounts = bind_mounts(compose_service("grafana"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.yml"))
        for source in load_yaml(path)["datasources"]
    ]
    prometheus = [source for source in datasources if source["type"] == "prometheus"]
    assert len(prometheus) == 1
    assert prometheus[0]["url"] == "http://prometheus:9090"
    assert prometheus[0].get("isDefault") is True
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in load_yaml(path)["providers"]
    ]
    assert [provider["options"]["path"] for provider in providers] == [mounts["./deploy/grafana/dashboards"]]


# -- Kubernetes (kustomize) ---------------------------------------------------------------------------------------


def test_kustomize_base_lists_exactly_the_manifests_in_its_folder() -> None:
    listed = base_kustomization()["resources"]
    on_disk = sorted(
        path.name
        for path in (K8S / "base").glob("*.y*ml")
        if path.name not in {"kustomization.yaml", "kustomization.yml"}
    )
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed))
    for service in SERVICE_NAMES:
        assert f"{service}.yaml" in listed


def test_kustomize_base_generates_the_platform_configmap() -> None:
    literals = generator_literals(base_kustomization(), "heard-platform")
    assert literals["KAFKA_BOOTSTRAP_SERVERS"]
    assert literals["MONGODB_URI"].startswith("mongodb")
    assert literals["KAFKA_TOPIC_REPLICATION_FACTOR"] == "1"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_k8s_deployment_probes_resources_and_security(service: str) -> None:
    deployment = service_documents(service)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = only_container(deployment)
    port = SERVICES[service]

    assert container["image"] == f"heard-{service}"
    ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container["ports"]}
    assert port in ports.values()
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, f"{service}: {probe}"
        assert ports.get(str(http_get["port"]), http_get["port"]) == port, f"{service}: {probe} port"

    resources = container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), f"{service}: resources.{section}"

    pod_security = pod["securityContext"]
    security = container["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security.get("runAsUser", 1) != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, "a read-only root filesystem needs a writable /tmp"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_k8s_deployment_environment_labels_and_scraping(service: str) -> None:
    deployment = service_documents(service)["Deployment"]
    container = only_container(deployment)
    prefix = f"HEARD_{service.upper()}_"

    platform = [
        source for source in container["envFrom"] if source.get("configMapRef", {}).get("name") == "heard-platform"
    ]
    assert platform and platform[0]["prefix"] == prefix
    env = {item["name"]: item for item in container["env"]}
    assert all(name.startswith(prefix) for name in env), sorted(env)
    assert env[f"{prefix}HTTP_HOST"]["value"] == "0.0.0.0"
    assert env[f"{prefix}HTTP_PORT"]["value"] == str(SERVICES[service])

    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == f"heard-{service}"
    assert labels["app.kubernetes.io/part-of"] == "heard"
    assert labels["app.kubernetes.io/component"] == service
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == f"heard-{service}"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(SERVICES[service])
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_k8s_service_pdb_and_hpa_select_the_deployment(service: str) -> None:
    documents = service_documents(service)
    deployment = documents["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    name = deployment["metadata"]["name"]

    k8s_service = documents["Service"]["spec"]
    assert k8s_service["selector"] == selector
    assert [p["port"] for p in k8s_service["ports"]] == [SERVICES[service]]

    pdb = documents["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]

    hpa = documents["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", name)
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"]


def test_k8s_routing_mounts_the_operator_configmap_at_app_config() -> None:
    deployment = service_documents("routing")["Deployment"]
    container = only_container(deployment)
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    mount = mounts["/app/config"]
    assert mount.get("readOnly") is True
    assert volumes[mount["name"]]["configMap"]["name"] == "heard-routing-config"


def test_routing_config_file_names_agree_everywhere() -> None:
    in_image = {
        name: value for name, value in dockerfile_env(dockerfile("routing")).items() if name in ROUTING_FILE_VARS
    }
    in_compose = {
        name: value for name, value in compose_env(compose_service("routing")).items() if name in ROUTING_FILE_VARS
    }
    container = only_container(service_documents("routing")["Deployment"])
    in_k8s = {item["name"]: item["value"] for item in container["env"] if item["name"] in ROUTING_FILE_VARS}
    assert set(in_image) == set(ROUTING_FILE_VARS)
    assert in_image == in_compose == in_k8s
    assert bind_mounts(compose_service("routing"))["./config"] == "/app/config"


def test_web_reaches_the_apis_it_uses_and_ships_the_areas_file() -> None:
    env = compose_env(compose_service("web"))
    assert env["HEARD_WEB_INTAKE_URL"] == "http://intake:8081"
    assert env["HEARD_WEB_NOTIFY_URL"] == "http://notify:8083"
    assert env["HEARD_WEB_ROUTING_URL"] == "http://routing:8082"
    container = only_container(service_documents("web")["Deployment"])
    k8s_env = {item["name"]: item.get("value") for item in container["env"]}
    assert k8s_env["HEARD_WEB_INTAKE_URL"] == "http://heard-intake:8081"
    assert k8s_env["HEARD_WEB_NOTIFY_URL"] == "http://heard-notify:8083"
    assert k8s_env["HEARD_WEB_SECURE_COOKIES"] == "always", "production pages are served over TLS only"
    stage = final_stage(dockerfile("web"))
    areas = dockerfile_env(stage)["HEARD_WEB_AREAS_FILE"]
    copies = [arguments.split() for keyword, arguments in stage if keyword == "COPY"]
    assert any(parts[-1] == areas for parts in copies)
    assert (ROOT / "config" / Path(areas).name).is_file()


def test_intake_believes_forwarded_addresses_only_from_private_networks() -> None:
    """Web forwards each resident's address; intake's per-client limits must not lump residents together."""
    container = only_container(service_documents("intake")["Deployment"])
    trusted = {item["name"]: item.get("value") for item in container["env"]}["HEARD_INTAKE_FORWARDED_ALLOW_IPS"]
    compose_trusted = compose_env(compose_service("intake"))["HEARD_INTAKE_FORWARDED_ALLOW_IPS"]
    for value in (trusted, compose_trusted):
        assert "*" not in value
        networks = [ipaddress.ip_network(part.strip()) for part in value.split(",")]
        assert networks and all(network.is_private for network in networks), value


def test_routing_config_files_exist_in_the_repository() -> None:
    env = dockerfile_env(dockerfile("routing"))
    for variable in ROUTING_FILE_VARS:
        path = ROOT / "config" / Path(env[variable]).relative_to("/app/config")
        assert path.is_file(), f"{variable}={env[variable]} but {path.relative_to(ROOT)} does not exist"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_on_the_base(overlay: str) -> None:
    kustomization = load_yaml(K8S / "overlays" / overlay / "kustomization.yaml")
    assert "../../base" in kustomization["resources"]
    assert kustomization.get("namespace")
    for generator in kustomization.get("configMapGenerator", []):
        assert generator.get("behavior") == "merge", "overlays merge into the base's ConfigMaps"
    documents = render_overlay(overlay)
    for service in SERVICE_NAMES:
        image = only_container(rendered(documents, "Deployment", f"heard-{service}"))["image"]
        assert PINNED_TAG.fullmatch(image) and not image.endswith(":latest"), f"{overlay}: {image}"


def test_dev_overlay_runs_one_small_replica() -> None:
    documents = render_overlay("dev")
    for service in SERVICE_NAMES:
        deployment = rendered(documents, "Deployment", f"heard-{service}")
        assert deployment["spec"]["replicas"] == 1
        hpa = rendered(documents, "HorizontalPodAutoscaler", f"heard-{service}")
        assert hpa["spec"]["minReplicas"] == 1
        limits = only_container(deployment)["resources"]["limits"]
        base_limits = only_container(service_documents(service)["Deployment"])["resources"]["limits"]
        assert limits != base_limits, "dev should use smaller resources than the base"


def test_production_overlay_scales_pins_and_replicates() -> None:
    documents = render_overlay("production")
    for service in SERVICE_NAMES:
        deployment = rendered(documents, "Deployment", f"heard-{service}")
        hpa = rendered(documents, "HorizontalPodAutoscaler", f"heard-{service}")
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        if service in {"intake", "routing"}:
            assert deployment["spec"]["replicas"] == 3
            assert hpa["spec"]["minReplicas"] >= 3, "autoscaling must not undercut the three replicas"
        tag = image_tag(only_container(deployment)["image"])
        assert tag not in {"", "latest", "dev"}, f"production image tag of {service} is not pinned: {tag}"
    platform = rendered(documents, "ConfigMap", "heard-platform")["data"]
    assert platform["KAFKA_TOPIC_REPLICATION_FACTOR"] == "3"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_builds_overlay(overlay: str) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    for service in SERVICE_NAMES:
        for kind in WORKLOAD_KINDS:
            assert (kind, f"heard-{service}") in kinds
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in render_overlay(overlay) if doc["kind"] != "ConfigMap"}
    assert expected <= kinds
    for doc in documents:
        if doc["kind"] == "Deployment":
            mine = rendered(render_overlay(overlay), "Deployment", doc["metadata"]["name"])
            assert doc["spec"]["replicas"] == mine["spec"]["replicas"]
            assert only_container(doc)["image"] == only_container(mine)["image"]
            assert only_container(doc)["resources"] == only_container(mine)["resources"]
