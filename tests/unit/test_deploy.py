"""Tests of the deployment files: Dockerfile, docker-compose.yml, deploy/kubernetes, ClickHouse DDL (Grafana:
test_grafana.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SCHEMA_SQL = DEPLOY / "clickhouse" / "schema.sql"
TABLES = ("window_metrics", "outcomes", "join_stats", "dead_letters", "models", "feature_drift", "data_quality",
          "drift_events", "alerts")
VIEWS = ("window_metrics_latest", "metrics_hourly", "metrics_daily")

_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose-style ``${VAR}`` / ``${VAR:-default}`` with an empty environment (the documented defaults)."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted([*K8S.glob("*.yaml"), *K8S.glob("*.yml")]):
        docs.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc.get("kind") == kind]


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("DRIFTWARDEN_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


# --- docker-compose.yml -------------------------------------------------------------------------------------


def test_compose_file_passes_docker_compose_config() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must install it")
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    result = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr or result.stdout


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = []
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port!r} is not on 127.0.0.1"
            published.append(port)
    assert sorted(published) == sorted(
        ["127.0.0.1:9092:9092", "127.0.0.1:8123:8123", "127.0.0.1:9000:9000", "127.0.0.1:6066:6066",
         "127.0.0.1:9093:9093", "127.0.0.1:9090:9090", "127.0.0.1:3000:3000"]
    )


def test_compose_runs_a_single_node_kraft_kafka_with_internal_and_host_listeners() -> None:
    kafka = compose()["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka" and re.fullmatch(r"[34]\.\d+\.\d+", tag), kafka["image"]
    env = service_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == ":9093"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert sorted(advertised.values()) == ["127.0.0.1:9092", "kafka:19092"]
    host_listener = next(n for n, a in advertised.items() if a == "127.0.0.1:9092")
    assert listeners[host_listener] == ":9092"
    assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 1
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 1
    assert len(env["CLUSTER_ID"]) == 22
    assert "healthcheck" in kafka


def test_compose_worker_and_migrate_point_at_the_compose_services(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    clickhouse = service_env(services["clickhouse"])
    kafka_advertised = service_env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d+\.\d+(\.\d+)*", services["clickhouse"]["image"])
    for name in ("migrate", "driftwarden"):
        env = service_env(services[name])
        settings = settings_from(env, monkeypatch)
        assert not settings.embedded_kafka and not settings.embedded_clickhouse, name
        assert settings.kafka_bootstrap_servers is not None
        assert f"://{settings.kafka_bootstrap_servers}" in kafka_advertised
        dsn = urlsplit(settings.dsn)
        assert (dsn.scheme, dsn.hostname, dsn.port, dsn.path) == ("http", "clickhouse", 8123, "/driftwarden")
        assert (dsn.username, dsn.password) == (clickhouse["CLICKHOUSE_USER"], clickhouse["CLICKHOUSE_PASSWORD"])
        assert settings.web_host == "0.0.0.0"
        assert services[name]["image"] == services["driftwarden"]["image"] and services[name]["build"] == "."
    assert services["migrate"]["command"] == ["migrate"]
    assert services["driftwarden"]["command"] == ["up"]


def test_compose_worker_waits_for_healthy_dependencies_and_a_successful_migration() -> None:
    services = compose()["services"]
    assert services["driftwarden"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("kafka", "clickhouse"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert set(compose()["volumes"]) == {"kafka-data", "clickhouse-data", "alertmanager-data", "prometheus-data"}


def _tool(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        message = f"{name} is not installed (apt-get install prometheus-alertmanager prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must install it")
        pytest.skip(message)
    return binary


def test_compose_routes_alerts_to_alertmanager_and_prometheus_scrapes_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    settings = settings_from(service_env(services["driftwarden"]), monkeypatch)
    assert settings.alertmanager_urls == ["http://alertmanager:9093"]
    mounted = {v.split(":")[0] for v in services["alertmanager"]["volumes"]}
    assert "./deploy/alertmanager/alertmanager.yml" in mounted
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"driftwarden:{service_env(services['driftwarden'])['DRIFTWARDEN_WEB_PORT']}"]


def test_alertmanager_and_prometheus_configs_pass_their_own_checkers() -> None:
    for tool, args in (("amtool", ["check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")]),
                       ("promtool", ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])):
        result = subprocess.run([_tool(tool), *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr or result.stdout


# --- Dockerfile ------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def test_dockerfile_runs_driftwarden_as_non_root_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    froms = [arg.split()[0].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for op, arg in instructions
             if op == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms), froms
    last = {op: arg for op, arg in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["driftwarden"]
    assert json.loads(last["CMD"]) == ["up"]
    assert last["EXPOSE"] == "6066"
    user = last["USER"].split(":")[0]
    assert user not in ("root", "0"), "the final stage must not run as root"
    assert "DRIFTWARDEN_WEB_HOST=0.0.0.0" in " ".join(arg for op, arg in instructions if op == "ENV")
    installs = " ".join(arg for op, arg in instructions if op == "RUN" and "pip install" in arg)
    assert "pip install" in installs and "[dev]" not in installs
    assert "curl" not in last["HEALTHCHECK"]


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_build_context() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "the context is an allow-list"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for op, arg in dockerfile_instructions():
        if op != "COPY" or "--from=" in arg:
            continue
        sources = arg.split()[:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository, the build would fail"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def health_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_command_reads_healthz(health_server: HTTPServer, status: int, healthy: bool) -> None:
    check = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split("CMD", 1)[1])
    assert check[:2] == ["python", "-c"]
    _Health.status = status
    env = {**os.environ, "DRIFTWARDEN_WEB_PORT": str(health_server.server_address[1])}
    result = subprocess.run([sys.executable, "-c", check[2]], env=env, capture_output=True, timeout=30, check=False)
    assert (result.returncode == 0) is healthy, result.stderr


# --- Kubernetes ------------------------------------------------------------------------------------------------


def test_kubernetes_manifests_parse_and_have_every_kind() -> None:
    docs = k8s_documents()
    for path, doc in docs:
        assert {"apiVersion", "kind"} <= set(doc), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], path
    kinds = sorted(doc["kind"] for _, doc in docs)
    assert kinds == sorted(["ConfigMap", "Deployment", "Job", "Kustomization", "Namespace", "PodDisruptionBudget",
                            "Secret", "Service"])


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


def test_kubernetes_worker_probes_resources_and_configuration() -> None:
    (deployment,) = k8s_kind("Deployment")
    (container,) = _pod_spec(deployment)["containers"]
    assert container["args"] == ["up"]
    assert container["ports"] == [{"name": "http", "containerPort": 6066, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    (configmap,) = k8s_kind("ConfigMap")
    (secret,) = k8s_kind("Secret")
    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}},
                                    {"secretRef": {"name": secret["metadata"]["name"]}}]
    assert _pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_kubernetes_configmap_and_secret_make_a_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    (configmap,) = k8s_kind("ConfigMap")
    (secret,) = k8s_kind("Secret")
    assert "DRIFTWARDEN_CLICKHOUSE_DSN" not in configmap["data"], "the DSN holds a password: Secret only"
    assert set(secret["stringData"]) == {"DRIFTWARDEN_CLICKHOUSE_DSN"}
    settings = settings_from({**configmap["data"], **secret["stringData"]}, monkeypatch)
    assert not settings.embedded_kafka and not settings.embedded_clickhouse
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", 6066)
    assert all(isinstance(v, str) for v in configmap["data"].values()), "ConfigMap values must be strings"


def test_kubernetes_service_pdb_and_job_select_the_right_pods() -> None:
    (deployment,) = k8s_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (service,) = k8s_kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["port"] == 6066 and service["spec"]["ports"][0]["targetPort"] == "http"
    (pdb,) = k8s_kind("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (job,) = k8s_kind("Job")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= job_labels.items(), "the Service must not select the Job"
    (migrate,) = _pod_spec(job)["containers"]
    assert migrate["args"] == ["migrate"]
    assert _pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    assert migrate["envFrom"] == _pod_spec(deployment)["containers"][0]["envFrom"]


def test_kustomization_lists_every_manifest_except_the_example_secret() -> None:
    (kustomization,) = k8s_kind("Kustomization")
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"secret.example.yaml"}
    images = {image["name"] for image in kustomization["images"]}
    workload_images = {c["image"].split(":")[0] for kind in ("Deployment", "Job") for d in k8s_kind(kind)
                       for c in _pod_spec(d)["containers"]}
    assert workload_images <= images


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {"driftwarden"}


# --- ClickHouse DDL ---------------------------------------------------------------------------------------------


def export_schema() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_schema", DEPLOY / "clickhouse" / "export_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_sql_is_up_to_date() -> None:
    assert SCHEMA_SQL.read_text() == export_schema().render(), "run python deploy/clickhouse/export_schema.py"


def test_schema_sql_renders_every_table_and_view_with_the_ttl() -> None:
    text = export_schema().render("analytics", 7)
    for name in TABLES:
        assert f"CREATE TABLE IF NOT EXISTS analytics.{name} (" in text
    for name in VIEWS:
        assert f"CREATE VIEW IF NOT EXISTS analytics.{name} AS" in text
    assert "INTERVAL 7 DAY" in text and "{" not in text


def test_export_schema_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    module = export_schema()
    target = tmp_path / "schema.sql"
    assert module.main(["--check", "--output", str(target)]) == 1
    assert module.main(["--output", str(target)]) == 0
    assert module.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("90 DAY", "30 DAY"))
    assert module.main(["--check", "--output", str(target)]) == 1
