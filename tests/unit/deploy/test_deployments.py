"""deploy/compose.yaml, deploy/k8s/ and deploy/Containerfile name only what the code has.

Docker and a cluster are not available to the tests, so each container the files
describe is checked against the code instead: its command is a real entrypoint (a
``__main__`` module, or a real subcommand of ``python -m producers``), its environment
passes the process's own settings validation (an unknown variable under the process's
prefix stops it), no variable is set that nothing reads, its config files load with
the code's loaders, the files it must find again after a restart are on writable
persistent volumes, and its ports, probes and scrape targets are the agreed ones.
Kafka-wise, every container runs against three brokers or more with the replication
set explicitly and logs in with SASL/SCRAM as its role's principal (deploy/acls.py's
roles), its password only ever from a secret (an env file in compose, a Secret in
Kubernetes); compose's own cluster has deploy/local.py's cluster settings.
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
from schemas.runtime.kafka import KNOWN_KEYS, KafkaSettings
from schemas.runtime.kafka_auth import KEYS as AUTH_KEYS
from schemas.runtime.kafka_auth import PASSWORD_KEY, USERNAME_KEY, SaslMechanism, SecurityProtocol
from schemas.runtime.replication import (
    CLUSTER_FACTOR,
    CLUSTER_MIN_INSYNC,
    FACTOR_KEY,
    MIN_INSYNC_KEY,
)
from schemas.runtime.settings import load
from schemas.taxonomy import SinkFamily
from schemas.topics import Topics
from tests.support.processes import load_local_stack

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KAFKA_VARS = set(KNOWN_KEYS)
local = load_local_stack()
acls = local.load_acls()
RELAY_ROLES = {g.principal for g in acls.grants(Topics(""))}
"""The principals deploy/acls.py grants to; the operator, a super user, needs none."""
ROLE_OF = {
    "streams": "streams",
    "streams.gate": "gate",
    "consumers.marketing": "marketing",
    "consumers.analytics": "analytics",
    "consumers.partners": "partner_sharing",
    "producers.gateway": "producers",
    "producers": local.OPERATOR,
    "deploy.grant_acls": local.OPERATOR,
}
"""Which principal each process logs in as."""
ONE_SHOT = {"deploy.grant_acls"}
"""Operators' modules from the repository (not in the image): mounted where used."""
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
    from_secrets: dict[str, str] = field(default_factory=dict)
    """Variables set from a secret (compose: an env file; k8s: a Secret) → its name."""


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
        if module in ONE_SHOT:
            spec = importlib.util.find_spec(module)
            if spec is None or spec.origin is None:
                problems.append(f"{where}: no {module} (python -m {module})")
            elif 'if __name__ == "__main__":' not in Path(spec.origin).read_text():
                problems.append(f"{where}: {module} runs nothing under python -m")
            continue
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


def kafka_problems(container: Container) -> list[str]:
    """What is wrong with how a container reaches Kafka: replication not set for three
    brokers, no SASL/SCRAM, a principal other than its role's, or credentials that do not
    come from a secret."""
    where, env = container.where, container.env
    problems = []
    for key, wanted in ((FACTOR_KEY, CLUSTER_FACTOR), (MIN_INSYNC_KEY, CLUSTER_MIN_INSYNC)):
        if env.get(key) != str(wanted):
            problems.append(f"{where}: {key}={env.get(key)!r}, not {wanted} (set it explicitly)")
    missing = [key for key in AUTH_KEYS if not env.get(key)]
    if missing:
        problems.append(f"{where}: no {missing}")
    sasl = {SecurityProtocol.SASL_PLAINTEXT.value, SecurityProtocol.SASL_SSL.value}
    if env.get(AUTH_KEYS[0]) not in sasl:
        problems.append(f"{where}: {AUTH_KEYS[0]}={env.get(AUTH_KEYS[0])!r}, not SASL")
    if env.get(AUTH_KEYS[1]) != SaslMechanism.SCRAM_SHA_512.value:
        problems.append(f"{where}: {AUTH_KEYS[1]}={env.get(AUTH_KEYS[1])!r}, not SCRAM-SHA-512")
    for key in (USERNAME_KEY, PASSWORD_KEY):
        if key not in container.from_secrets:
            problems.append(f"{where}: {key} is not taken from a secret")
    roles = {ROLE_OF[argv[2]] for argv in invocations(container.command) if argv[2] in ROLE_OF}
    if len(roles) != 1:
        problems.append(f"{where}: runs as no single role ({sorted(roles)})")
    elif env.get(USERNAME_KEY) not in roles:
        problems.append(f"{where}: logs in as {env.get(USERNAME_KEY)!r}, not as {roles.pop()!r}")
    return problems


def test_each_process_has_a_role_of_deploy_acls() -> None:
    assert set(ROLE_OF.values()) == RELAY_ROLES | {local.OPERATOR}
    assert set(ROLE_OF.values()) == set(local.ROLES)
    assert set(PROCESSES) | {"producers"} | ONE_SHOT == set(ROLE_OF)


def vars_of(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def routes_exist(process_module: str, path: str) -> bool:
    """Whether the process's top-level package serves ``path``: a route literal, the
    routes every process serves (``schemas.runtime.http_server.open_routes``) when it asks
    for them, or, for /metrics, Faust's Prometheus sensor (which adds that page to the
    worker's web)."""
    package = REPO / process_module.split(".", maxsplit=1)[0]
    sources = [p.read_text() for p in package.rglob("*.py")]
    faust_metrics = path == "/metrics" and any(
        "setup_prometheus_sensors(" in s or "install_faust_metrics(" in s for s in sources
    )
    if any("open_routes(" in s for s in sources):
        sources.append((REPO / "schemas" / "runtime" / "http_server.py").read_text())
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
        env: dict[str, str] = {}
        from_secrets: dict[str, str] = {}
        for env_file in env_files(service):
            read = read_env_file(DEPLOY / env_file)
            env.update(read)
            from_secrets.update(dict.fromkeys(read, env_file))
        for key, value in service.get("environment", {}).items():
            env[key] = str(value)
            from_secrets.pop(key, None)  # `environment` wins over env files
        persistent = tuple(
            target
            for source, target, *mode in (v.split(":") for v in service.get("volumes", []))
            if source in (compose.get("volumes") or {}) and "ro" not in mode
        )
        containers[name] = Container(
            f"compose {name}", service["command"], env, files, persistent, from_secrets
        )
    return containers


def env_files(service: dict[str, Any]) -> list[str]:
    listed = service.get("env_file", [])
    return [listed] if isinstance(listed, str) else list(listed)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments), as compose reads an env file."""
    assert path.is_file(), f"env file {path} is missing"
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {raw!r} is not KEY=value"
            env[key] = value
    return env


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
    assert services["registry"]["image"].startswith("apicurio/apicurio-registry:3.")
    assert "8081:8080" in services["registry"]["ports"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, container in compose_containers(compose).items():
        assert services[name]["image"] == f"consent-relay:{version}"
        assert container.env["KAFKA_BOOTSTRAP"] == ",".join(f"{n}:9092" for n in KAFKA_NODES)
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


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_compose_processes_log_in_as_their_roles_on_three_brokers(
    compose: dict[str, Any],
) -> None:
    problems: list[str] = []
    for name, container in compose_containers(compose).items():
        problems += kafka_problems(container)
        environment = compose["services"][name].get("environment", {})
        problems += [
            f"compose {name}: {key} written in compose.yaml"
            for key in (USERNAME_KEY, PASSWORD_KEY)
            if key in environment
        ]
    assert not problems
    in_use = {c.env[USERNAME_KEY] for c in compose_containers(compose).values()}
    assert in_use == set(local.ROLES)


def test_compose_runs_a_three_node_cluster_like_the_local_one(compose: dict[str, Any]) -> None:
    services = compose["services"]
    shared = properties(compose["configs"]["kafka-server"]["content"])
    # deploy/local.py --brokers 3: replication, fencing and election inside the sessions.
    assert local._cluster_properties(len(KAFKA_NODES)).items() <= shared.items()
    assert shared["process.roles"] == "broker,controller"
    voters = shared["controller.quorum.voters"].split(",")
    assert voters == [f"{n + 1}@{node}:9093" for n, node in enumerate(KAFKA_NODES)]
    assert shared["sasl.enabled.mechanisms"] == local.SCRAM
    assert shared["authorizer.class.name"] == local.STANDARD_AUTHORIZER
    assert shared["allow.everyone.if.no.acl.found"] == "false"
    assert local.OPERATOR in {u.removeprefix("User:") for u in shared["super.users"].split(";")}
    protocols = dict(p.split(":") for p in shared["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "no listener without a login"
    script = (DEPLOY / compose["configs"]["kafka-start"]["file"]).resolve()
    assert script == DEPLOY / "kafka" / "compose-node.sh"
    assert "--add-scram" in script.read_text()
    ids = set()
    for node in KAFKA_NODES:
        service = services[node]
        assert service["image"].startswith("apache/kafka:")
        assert service["command"] == ["sh", "/etc/kafka-node/start.sh"]
        assert "./kafka-users:/etc/kafka-users:ro" in service["volumes"]
        ids.add(service["environment"]["NODE_ID"])
    assert ids == {"1", "2", "3"}
    assert len({services[node]["environment"]["CLUSTER_ID"] for node in KAFKA_NODES}) == 1
    assert set(services["setup"]["depends_on"]) >= set(KAFKA_NODES)


def test_compose_kafka_users_are_the_roles_and_the_nodes_own() -> None:
    users = {path.stem: read_env_file(path) for path in (DEPLOY / "kafka-users").glob("*.env")}
    assert set(users) == {*local.ROLES, local.BROKER_PRINCIPAL, "controller"}
    for name, env in users.items():
        assert env.keys() == {USERNAME_KEY, PASSWORD_KEY}, name
        assert env[USERNAME_KEY] == name
        # kafka-storage's --add-scram 'SCRAM-SHA-512=[name=..,password=..]' syntax.
        assert not set(env[PASSWORD_KEY]) & set(",]\"'"), name


def test_compose_setup_grants_the_acls_with_the_mounted_deploy_files(
    compose: dict[str, Any],
) -> None:
    setup = compose["services"]["setup"]
    modules = [argv[2] for argv in invocations(setup["command"])]
    assert modules[-1] == "deploy.grant_acls", "ACLs granted after the topics exist"
    mounted = {}
    for volume in setup["volumes"]:
        source, target, mode = volume.split(":")
        assert mode == "ro"
        mounted[target] = (DEPLOY / source).resolve()
    root = setup["working_dir"]
    for module in ("deploy.grant_acls", "deploy.acls"):
        path = f"{root}/{module.replace('.', '/')}.py"
        assert mounted.get(path) == REPO / f"{module.replace('.', '/')}.py", path
    imported = re.findall(
        r"^from deploy import (\w+)", (DEPLOY / "grant_acls.py").read_text(), re.M
    )
    assert imported == ["acls"]


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
    secrets = of_kind(docs, "Secret")
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            env: dict[str, str] = {}
            from_secrets: dict[str, str] = {}
            for source in c.get("envFrom", []):
                env.update(config_maps[source["configMapRef"]["name"]]["data"])
            for var in c.get("env", []):
                if "value" in var:
                    env[var["name"]] = str(var["value"])
                elif "secretKeyRef" in var["valueFrom"]:
                    ref = var["valueFrom"]["secretKeyRef"]
                    assert ref["name"] in secrets, f"{var['name']}: no Secret {ref['name']}"
                    env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
                    from_secrets[var["name"]] = ref["name"]
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
            yield workload, Container(where, c["command"], env, files, persistent, from_secrets)


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


def test_k8s_processes_log_in_as_their_roles_from_their_secrets(
    k8s: list[dict[str, Any]],
) -> None:
    problems: list[str] = []
    secrets = of_kind(k8s, "Secret")
    in_use = set()
    for _, container in pod_containers(k8s):
        problems += kafka_problems(container)
        role = container.env.get(USERNAME_KEY)
        in_use.add(role)
        # One Secret per role: a process sees no other principal's password.
        for key in (USERNAME_KEY, PASSWORD_KEY):
            secret = container.from_secrets.get(key)
            if secret is not None and set(secrets[secret]["stringData"]) != {
                "username",
                "password",
            }:
                problems.append(f"{container.where}: {key} from {secret}, not a Kafka user's")
    assert not problems
    assert in_use == set(local.ROLES)
    users = {
        name: secret["stringData"]["username"]
        for name, secret in secrets.items()
        if name.startswith("kafka-user-")
    }
    assert sorted(users.values()) == sorted(local.ROLES), "one Secret per role"
    for name, user in users.items():
        assert name == f"kafka-user-{user.replace('_', '-')}"


def test_k8s_kafka_passwords_live_only_in_secrets(k8s: list[dict[str, Any]]) -> None:
    for config_map in of_kind(k8s, "ConfigMap").values():
        assert not {USERNAME_KEY, PASSWORD_KEY} & set(config_map["data"])
        for text in config_map["data"].values():
            assert "sasl.password" not in text
            assert "password=" not in text
    for workload in [*of_kind(k8s, "Deployment").values(), *of_kind(k8s, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            for var in c.get("env", []):
                if var["name"] in (USERNAME_KEY, PASSWORD_KEY):
                    assert "secretKeyRef" in var.get("valueFrom", {}), (c["name"], var)


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
