"""deploy/compose.yaml, deploy/k8s/ and deploy/Containerfile name only what the code has.

Docker and a cluster are not available to the tests, so each container the files
describe is checked against the code instead: its command is a real entrypoint (a
``__main__`` module, or a real subcommand of ``python -m producers``), its environment
passes the process's own settings validation (an unknown variable under the process's
prefix stops it), no variable is set that nothing reads, its config files load with
the code's loaders, the files it must find again after a restart are on writable
persistent volumes, and its ports, probes and scrape targets are the agreed ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from consumers.partners.config import load_config
from consumers.runner import DEFAULT_PORTS
from producers.cli import build_parser
from producers.gateway.tokens import TokenBook
from schemas.errors import ConfigError
from schemas.kafka import KafkaSettings
from schemas.settings import load
from schemas.taxonomy import SinkFamily

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KAFKA_VARS = {
    "KAFKA_BOOTSTRAP",
    "SCHEMA_REGISTRY_URL",
    "CONSENT_RELAY_TOPIC_PREFIX",
    "CONSENT_RELAY_PARTITIONS",
}
DATA_DIR = "/var/lib/consent-relay"
"""The image's writable home (deploy/Containerfile); stores and state live under it."""


@dataclass(frozen=True)
class Process:
    """One of the relay's long-running processes, as agreed."""

    settings: str
    """module:Class of its settings dataclass (read from ``<module>.PREFIX`` variables)."""
    port: int
    routes: tuple[str, ...]
    port_of: Callable[[Any], int]
    host_of: Callable[[Any], str]
    files: Mapping[str, Callable[[Path, Mapping[str, str]], Any]] = field(default_factory=dict)
    """Settings naming a config file → the code's loader of that file."""
    api: bool = False
    """It serves a per-person API, which answers only its ``API_TOKEN`` (none: nobody)."""
    durable: tuple[str, ...] = ()
    """Settings naming a file the process must find again after a restart: each must be
    set, and on a writable volume that outlives the container."""


def _sink_port(family: str) -> Callable[[Any], int]:
    def port(settings: Any) -> int:
        return int(settings.http_port or DEFAULT_PORTS[SinkFamily(family)])

    return port


def _load_partners(path: Path, env: Mapping[str, str]) -> Any:
    return load_config(path, env)


def _load_tokens(path: Path, _env: Mapping[str, str]) -> Any:
    return TokenBook.load(path)


SINK_ROUTES = ("/metrics", "/healthz")
PROCESSES = {
    "streams": Process(
        "streams.config:StreamSettings",
        6066,
        ("/metrics",),
        lambda s: s.web_port,
        lambda s: s.web_bind,
        api=True,
    ),
    "streams.gate": Process(
        "streams.gate.settings:GateSettings",
        8094,
        ("/metrics",),
        lambda s: s.http_port,
        lambda s: s.http_host,
    ),
    "consumers.marketing": Process(
        "consumers.marketing.settings:MarketingSettings",
        8091,
        SINK_ROUTES,
        _sink_port("MARKETING"),
        lambda s: s.http_host,
        api=True,
    ),
    "consumers.analytics": Process(
        "consumers.analytics.settings:AnalyticsSinkSettings",
        8092,
        SINK_ROUTES,
        _sink_port("ANALYTICS"),
        lambda s: s.http_host,
        durable=("database",),
    ),
    "consumers.partners": Process(
        "consumers.partners.settings:PartnerSinkSettings",
        8093,
        SINK_ROUTES,
        _sink_port("PARTNER_SHARING"),
        lambda s: s.http_host,
        {"config": _load_partners},
        # What each partner acknowledged: without it a duplicate after a restart is
        # POSTed again (consumers/partners/answers.py).
        durable=("database",),
    ),
    "producers.gateway": Process(
        "producers.gateway.settings:GatewaySettings",
        8080,
        ("/metrics", "/healthz", "/readyz"),
        lambda s: s.port,
        lambda s: s.host,
        {"tokens_file": _load_tokens},
    ),
}
JOBS = {
    "consent-relay-streams": "streams",
    "consent-relay-gate": "streams.gate",
    "consent-relay-marketing": "consumers.marketing",
    "consent-relay-analytics": "consumers.analytics",
    "consent-relay-partners": "consumers.partners",
    "consent-relay-gateway": "producers.gateway",
}


@dataclass
class Container:
    """What a compose service or a pod's container runs."""

    where: str
    command: list[str]
    env: dict[str, str]
    files: dict[str, str]
    """Mounted config files: path in the container → content."""
    persistent: tuple[str, ...] = ()
    """Mount paths of writable volumes that outlive the container (not config mounts)."""


def invocations(command: list[str]) -> Iterator[list[str]]:
    """The ``python -m`` invocations of a command (``sh -c "a && b"`` gives two)."""
    if command[:2] == ["sh", "-c"]:
        for part in command[2].split("&&"):
            yield shlex.split(part)
    else:
        yield command


def settings_class(process: Process) -> tuple[type[Any], str]:
    module_name, class_name = process.settings.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name), module.PREFIX


def check_container(container: Container, tmp_path: Path) -> tuple[list[str], Process | None]:
    """Everything wrong with one container; and the process it runs, if it is one."""
    problems: list[str] = []
    where = container.where
    process: Process | None = None
    for argv in invocations(container.command):
        if argv[:2] != ["python", "-m"] or len(argv) < 3:
            problems.append(f"{where}: {argv} is not `python -m <entrypoint>`")
            continue
        module, args = argv[2], argv[3:]
        if importlib.util.find_spec(module) is None or (
            importlib.util.find_spec(f"{module}.__main__") is None
        ):
            problems.append(f"{where}: no {module}/__main__.py (python -m {module})")
        if module == "producers":
            try:
                build_parser().parse_args(args)
            except SystemExit:
                problems.append(f"{where}: `python -m producers {' '.join(args)}` is no command")
        elif module in PROCESSES:
            if args:
                problems.append(f"{where}: {module} takes no arguments here, got {args}")
            process = PROCESSES[module]
        else:
            problems.append(f"{where}: {module} is not one of the relay's processes")
    try:
        KafkaSettings.from_env(container.env)
    except ConfigError as exc:
        problems.append(f"{where}: {exc}")
    known = set(KAFKA_VARS)
    if process is not None:
        problems += check_process(container, process, known, tmp_path)
    unused = sorted(set(container.env) - known)
    if unused:
        problems.append(f"{where}: nothing in the process reads {unused}")
    return problems, process


def check_process(
    container: Container, process: Process, known: set[str], tmp_path: Path
) -> list[str]:
    """Validate the container's settings with the process's own code."""
    where = container.where
    cls, prefix = settings_class(process)
    known.update(k for k in container.env if k.startswith(prefix))
    try:
        settings = load(cls, prefix, container.env)
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    problems = []
    if process.port_of(settings) != process.port:
        problems.append(f"{where}: serves on {process.port_of(settings)}, not {process.port}")
    if process.host_of(settings) not in {"0.0.0.0", "::"}:  # reachable from outside
        problems.append(f"{where}: binds {process.host_of(settings)}, unreachable from outside")
    if process.api and settings.api_token is None:
        problems.append(f"{where}: no {prefix}API_TOKEN, so its API answers no one")
    port_vars = {prefix + "HTTP_PORT", prefix + "PORT", prefix + "WEB_PORT"}
    defaults = {k: v for k, v in container.env.items() if k not in port_vars}
    if process.port_of(load(cls, prefix, defaults)) != process.port:
        problems.append(f"{where}: the code's default port is not the agreed {process.port}")
    for name in process.durable:
        kept = getattr(settings, name)
        if kept is None:
            problems.append(f"{where}: no {prefix}{name.upper()}: its state is lost on restart")
        elif not any(Path(kept).is_relative_to(mount) for mount in container.persistent):
            problems.append(
                f"{where}: {prefix}{name.upper()}={kept} is on no writable persistent volume"
                f" (those mounted: {list(container.persistent)})"
            )
    for name, value in vars_of(settings).items():
        if isinstance(value, str) and value.startswith("sqlite://"):
            value = Path(value.removeprefix("sqlite://").replace("//", "/", 1))  # noqa: PLW2901
        if not isinstance(value, Path):
            continue
        if name in process.files:
            content = container.files.get(str(value))
            if content is None:
                problems.append(f"{where}: {prefix}{name.upper()}={value} is not mounted")
                continue
            local = tmp_path / value.name
            local.write_text(content)
            known.update(re.findall(r'"env:([A-Z0-9_]+)"', content))
            try:
                process.files[name](local, container.env)
            except ConfigError as exc:
                problems.append(f"{where}: {value}: {exc}")
        elif not str(value).startswith(DATA_DIR + "/"):
            problems.append(f"{where}: {prefix}{name.upper()}={value} is outside {DATA_DIR}")
    return problems


def vars_of(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def routes_exist(process_module: str, path: str) -> bool:
    """Whether the process's top-level package serves ``path``: a route literal, or, for
    /metrics, Faust's Prometheus sensor (which adds that page to the worker's web)."""
    package = REPO / process_module.split(".", maxsplit=1)[0]
    sources = [p.read_text() for p in package.rglob("*.py")]
    faust_metrics = path == "/metrics" and any("setup_prometheus_sensors(" in s for s in sources)
    return faust_metrics or any(f'"{path}"' in s for s in sources)


# --- compose ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(read_yaml: Callable[[Path], Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = read_yaml(DEPLOY / "compose.yaml")
    return loaded


def compose_containers(compose: dict[str, Any]) -> dict[str, Container]:
    containers = {}
    for name, service in compose["services"].items():
        if not service["image"].startswith("consent-relay:"):
            continue
        files = {
            c["target"]: compose["configs"][c["source"]]["content"]
            for c in service.get("configs", [])
        }
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        persistent = tuple(
            target
            for source, target, *mode in (v.split(":") for v in service.get("volumes", []))
            if source in (compose.get("volumes") or {}) and "ro" not in mode
        )
        containers[name] = Container(f"compose {name}", service["command"], env, files, persistent)
    return containers


def test_compose_runs_every_process(compose: dict[str, Any], tmp_path: Path) -> None:
    problems: list[str] = []
    ran: set[str] = set()
    for container in compose_containers(compose).values():
        found, process = check_container(container, tmp_path)
        problems += found
        ran.update(m for m, p in PROCESSES.items() if p is process)
    assert not problems
    assert ran == set(PROCESSES)


def test_compose_ports_and_healthchecks_are_the_agreed_ones(compose: dict[str, Any]) -> None:
    for name, container in compose_containers(compose).items():
        process = next((PROCESSES[m] for m in PROCESSES if m in container.command), None)
        if process is None:
            continue
        module = next(m for m in PROCESSES if m in container.command)
        service = compose["services"][name]
        check = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
        assert url, f"{name}: healthcheck {check!r} fetches no local URL"
        assert int(url.group(1)) == process.port, name
        assert url.group(2) in process.routes, name
        assert routes_exist(module, url.group(2)), f"{module} serves no {url.group(2)}"
        for published in service.get("ports", []):
            assert published == f"{process.port}:{process.port}", name


def test_compose_prometheus_scrapes_every_process(
    compose: dict[str, Any], read_yaml: Callable[[Path], Any]
) -> None:
    containers = compose_containers(compose)
    config = read_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets: dict[str, tuple[str, int]] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                targets[job["job_name"]] = (host, sd["port"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                targets[job["job_name"]] = (host, int(port))
    for job, module in JOBS.items():
        host, port = targets[job]
        assert host in containers, f"{job} scrapes {host}, which is no compose service"
        assert module in containers[host].command
        assert port == PROCESSES[module].port
        assert config["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "PLAINTEXT://:9092" in services["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert services["registry"]["image"].startswith("apicurio/apicurio-registry:3.")
    assert "8081:8080" in services["registry"]["ports"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, container in compose_containers(compose).items():
        assert services[name]["image"] == f"consent-relay:{version}"
        assert container.env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert container.env["SCHEMA_REGISTRY_URL"] == "http://registry:8080/apis/ccompat/v7"
    build = services["setup"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Containerfile")
    partitions = int(services["streams"]["environment"]["CONSENT_RELAY_PARTITIONS"])
    assert services["streams"]["deploy"]["replicas"] <= partitions
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in services["grafana"]["volumes"]


# --- kubernetes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s(read_yaml_documents: Callable[[str], list[Any]]) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += read_yaml_documents(path.read_text())
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Container]]:
    config_maps = of_kind(docs, "ConfigMap")
    (secret,) = of_kind(docs, "Secret").values()
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                env.update(config_maps[source["configMapRef"]["name"]]["data"])
            for var in c.get("env", []):
                if "value" in var:
                    env[var["name"]] = str(var["value"])
                elif "secretKeyRef" in var["valueFrom"]:
                    ref = var["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == secret["metadata"]["name"]
                    env[var["name"]] = secret["stringData"][ref["key"]]
                else:
                    env[var["name"]] = "10.1.2.3"  # a fieldRef such as status.podIP
            files = {}
            persistent = tuple(
                mount["mountPath"]
                for mount in c.get("volumeMounts", [])
                if "persistentVolumeClaim" in volumes[mount["name"]]
                and not mount.get("readOnly", False)
            )
            for mount in c.get("volumeMounts", []):
                config_map = volumes[mount["name"]].get("configMap")
                if config_map is not None:
                    data = config_maps[config_map["name"]]["data"]
                    for item in config_map["items"]:
                        files[f"{mount['mountPath']}/{item['path']}"] = data[item["key"]]
            where = f"k8s {workload['kind']} {workload['metadata']['name']}/{c['name']}"
            yield workload, Container(where, c["command"], env, files, persistent)


def test_kustomization_lists_every_manifest(read_yaml: Callable[[Path], Any]) -> None:
    kustomization = read_yaml(DEPLOY / "k8s" / "kustomization.yaml")
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_k8s_runs_every_process(k8s: list[dict[str, Any]], tmp_path: Path) -> None:
    problems: list[str] = []
    ran: set[str] = set()
    for _, container in pod_containers(k8s):
        found, process = check_container(container, tmp_path)
        problems += found
        ran.update(m for m, p in PROCESSES.items() if p is process)
    assert not problems
    assert ran == set(PROCESSES)


def test_k8s_deployments_are_probed_and_scraped(k8s: list[dict[str, Any]]) -> None:
    for workload, container in pod_containers(k8s):
        if workload["kind"] != "Deployment":
            continue
        module = container.command[2]
        process = PROCESSES[module]
        spec = workload["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/component"] in {j.split("-")[-1] for j in JOBS}
        notes = spec["template"]["metadata"]["annotations"]
        assert notes == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(process.port),
            "prometheus.io/path": "/metrics",
        }
        (pod_container,) = spec["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in pod_container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = pod_container[probe]["httpGet"]
            assert ports[get["port"]] == process.port, container.where
            assert get["path"] in process.routes, container.where
            assert routes_exist(module, get["path"]), f"{module} serves no {get['path']}"
        assert "command" in pod_container
        assert pod_container["image"].startswith("consent-relay:")


def test_k8s_services_select_pods_and_feed_prometheus(
    k8s: list[dict[str, Any]], read_yaml: Callable[[Path], Any]
) -> None:
    deployments = of_kind(k8s, "Deployment")
    services = of_kind(k8s, "Service")
    for name, service in services.items():
        matches = [
            d
            for d in deployments.values()
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"Service {name} selects {len(matches)} Deployments"
        (container,) = matches[0]["spec"]["template"]["spec"]["containers"]
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    config = read_yaml(DEPLOY / "prometheus" / "prometheus-k8s.yml")
    for job in config["scrape_configs"]:
        (sd,) = job["dns_sd_configs"]
        (host,) = sd["names"]
        service_name, namespace = host.split(".")[:2]
        assert namespace == "consent-relay"
        service = services[service_name]
        assert service["spec"]["clusterIP"] == "None", f"{service_name} must be headless"
        deployment = next(
            d
            for d in deployments.values()
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        )
        module = deployment["spec"]["template"]["spec"]["containers"][0]["command"][2]
        assert JOBS[job["job_name"]] == module
        assert sd["port"] == PROCESSES[module].port
    assert {j["job_name"] for j in config["scrape_configs"]} == set(JOBS)


def test_k8s_stream_workers_scale_up_to_the_partition_count(k8s: list[dict[str, Any]]) -> None:
    partitions = int(
        of_kind(k8s, "ConfigMap")["consent-relay-kafka"]["data"]["CONSENT_RELAY_PARTITIONS"]
    )
    assert of_kind(k8s, "Deployment")["streams"]["spec"]["replicas"] <= partitions
    assert "up to CONSENT_RELAY_PARTITIONS" in (DEPLOY / "k8s" / "streams.yaml").read_text()


def test_k8s_objects_live_in_one_namespace(k8s: list[dict[str, Any]]) -> None:
    claims = set(of_kind(k8s, "PersistentVolumeClaim"))
    for doc in k8s:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "consent-relay", doc["metadata"]["name"]
    for deployment in of_kind(k8s, "Deployment").values():
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


# --- the image ----------------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    instructions = []
    for raw in (DEPLOY / "Containerfile").read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_image_is_python_311_slim_with_the_project_installed() -> None:
    steps = containerfile()
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert bases
    assert all(b == "python:3.11-slim" for b in bases)
    assert any(
        word == "RUN" and re.search(r"pip install \"?\.[\[\"\s]", rest) for word, rest in steps
    )
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: no such path"


def test_image_runs_and_exposes_the_processes() -> None:
    steps = dict(containerfile())
    exposed = {int(p) for p in steps["EXPOSE"].split()}
    assert exposed == {p.port for p in PROCESSES.values()}
    cmd = re.findall(r'"([^"]+)"', steps["CMD"])
    assert cmd[:2] == ["python", "-m"]
    assert cmd[2] in PROCESSES
    assert f"--home-dir {DATA_DIR}" in steps["RUN"]


SOURCE_OR_DOCS = {".py", ".pyc", ".md", ".rst", ".txt"}


def test_the_installed_package_carries_every_data_file() -> None:
    """``pip install .`` (the image) must ship the non-Python files the code reads."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"].get("package-data", {})
    missing = []
    for package in ("schemas", "streams", "consumers", "producers"):
        for path in sorted((REPO / package).rglob("*")):
            if path.is_dir() or path.suffix in SOURCE_OR_DOCS or "__pycache__" in path.parts:
                continue
            owner = path.parent.relative_to(REPO).as_posix().replace("/", ".")
            patterns = [
                (pkg, pattern)
                for pkg, patterns in package_data.items()
                for pattern in patterns
                if owner == pkg or owner.startswith(pkg + ".") or pkg == "*"
            ]
            in_package = [
                path.relative_to(REPO / pkg.replace(".", "/")).match(pattern)
                for pkg, pattern in patterns
                if pkg != "*"
            ]
            if not any(in_package):
                missing.append(path.relative_to(REPO).as_posix())
    assert not missing, f"not in [tool.setuptools.package-data], so not in the image: {missing}"
