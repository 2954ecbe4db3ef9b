"""deploy/k8s: every manifest is schema-valid, and the manifests agree with the code.

Kubernetes resources are validated with kubernetes-validate (the Kubernetes
JSON schemas it bundles, strict: unknown fields fail, as ``kubectl apply``
rejects them); the Strimzi resources against the JSON schemas of their CRDs
vendored in deploy/k8s/schemas (strict the same way). The cross-checks tie the
manifests to the code: topics, settings, worker replicas, autoscaling, probes.
Each check is also shown to fail on a broken copy of the manifests.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from cdp.cli.main import app as cli_app
from cdp.settings import PROJECT_ROOT, Settings, load_settings
from cdp.topics import declared_topics

DEPLOY = PROJECT_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
"""The oldest Kubernetes the manifests target (autoscaling/v2, policy/v1, batch/v1)."""
STRIMZI_SCHEMAS = DEPLOY / "schemas" / "strimzi-0.45.0.json"
STRIMZI_GROUP = "kafka.strimzi.io/"
CDP_IMAGE = "cdp"
"""The image name the manifests use; kustomization.yaml's ``images`` points it at a registry."""
DOCKERFILE = PROJECT_ROOT / "deploy" / "docker" / "Dockerfile"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LOOPBACK = ("127.", "localhost", "::1")

Doc = dict[str, Any]


# -- rendering (what `kubectl kustomize` does for the features kustomization.yaml uses)


def render(directory: Path) -> list[Doc]:
    """The resources of ``directory/kustomization.yaml``, with its ``images`` applied."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources", "images"}
    assert not unsupported, f"kustomization.yaml uses {unsupported}; extend render() first"
    images = {image["name"]: image for image in kustomization.get("images", [])}
    docs = []
    for resource in kustomization["resources"]:
        text = (directory / resource).read_text()
        docs += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for container in (c for doc in docs for c in containers(doc)):
        name, _, tag = container["image"].partition(":")
        if name in images:
            new = images[name]
            container["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
    return docs


def pod_spec(doc: Doc) -> Doc | None:
    """The pod template's spec of a workload (Deployment, StatefulSet, Job, CronJob)."""
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template") if isinstance(spec, dict) else None
    return template.get("spec") if isinstance(template, dict) else None


def containers(doc: Doc) -> list[Doc]:
    """The containers (init containers included) of a workload; [] for other kinds."""
    spec = pod_spec(doc) or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    """The documents of ``kind`` (and ``name``, if given)."""
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def only(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of ``kind`` (and ``name``)."""
    (doc,) = find(docs, kind, name)
    return doc


def cdp_config(docs: list[Doc]) -> dict[str, str]:
    """The ``CDP_`` settings of the ConfigMap cdp-config."""
    return {str(k): str(v) for k, v in only(docs, "ConfigMap", "cdp-config")["data"].items()}


def cdp_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container running the cdp image."""
    for doc in docs:
        for container in containers(doc):
            if container["image"] == CDP_IMAGE_REF:
                yield doc, container


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """A cdp container's environment: cdp-config (envFrom), then its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        env.update({str(k): str(v) for k, v in only(docs, "ConfigMap", ref)["data"].items()})
    env.update({item["name"]: str(item["value"]) for item in container.get("env", [])})
    return env


def port_number(container: Doc, port: int | str) -> int:
    """A probe's port (number or the name of a container port) as a number."""
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container["ports"] if p["name"] == port)
    return int(number)


# -- schema validation


def _strict(schema: Any) -> Any:
    """A structural CRD schema that rejects unknown fields (as the API server does)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {
        key: ({k: _strict(v) for k, v in value.items()} if key == "properties" else _strict(value))
        for key, value in schema.items()
    }
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def _strimzi_validator(kind: str) -> jsonschema.protocols.Validator:
    vendored = json.loads(STRIMZI_SCHEMAS.read_text())
    schema = _strict(vendored["schemas"][kind])
    validator_class = jsonschema.validators.validator_for(schema, jsonschema.Draft7Validator)
    return validator_class(schema)  # type: ignore[no-any-return]


def schema_errors(doc: Doc) -> list[str]:
    """Why ``doc`` is not valid for Kubernetes (or its Strimzi CRD); [] if it is."""
    kind = doc.get("kind", "?")
    if str(doc.get("apiVersion", "")).startswith(STRIMZI_GROUP):
        vendored = json.loads(STRIMZI_SCHEMAS.read_text())
        if doc["apiVersion"] != vendored["apiVersion"] or kind not in vendored["schemas"]:
            return [f"{doc['apiVersion']} {kind}: no vendored Strimzi schema"]
        errors = [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _strimzi_validator(kind).iter_errors(doc)
        ]
        name = doc.get("metadata", {}).get("name", "")
        if not _DNS_SUBDOMAIN.match(name):
            errors.append(f"metadata.name {name!r} is not a DNS subdomain")
        return errors
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [str(exc)]
    return []


# -- cross-checks against the code; each returns the problems it found


def topic_problems(docs: list[Doc]) -> list[str]:
    """Every declared topic has a KafkaTopic with its partitions, replicas and config."""
    config = cdp_config(docs)
    settings = load_settings(
        namespace=config["CDP_NAMESPACE"],
        partitions=config["CDP_PARTITIONS"],
        replication_factor=config["CDP_REPLICATION_FACTOR"],
    )
    declared = {spec.name: spec for spec in declared_topics(settings)}
    kafka = only(docs, "Kafka")["metadata"]["name"]
    topics = {
        d["spec"].get("topicName", d["metadata"]["name"]): d for d in find(docs, "KafkaTopic")
    }
    problems = [
        f"KafkaTopic {name}: not declared in cdp.topics" for name in set(topics) - set(declared)
    ]
    for name, spec in declared.items():
        topic = topics.get(name)
        if topic is None:
            problems.append(f"{name}: declared, but no KafkaTopic")
            continue
        actual = (
            topic["spec"].get("partitions"),
            topic["spec"].get("replicas"),
            {k: str(v) for k, v in topic["spec"].get("config", {}).items()},
            topic["metadata"].get("labels", {}).get("strimzi.io/cluster"),
        )
        wanted = (spec.partitions, spec.replication, spec.broker_config(), kafka)
        if actual != wanted:
            problems.append(f"{name}: (partitions, replicas, config, cluster) {actual} != {wanted}")
    return problems


def _topics_module(directory: Path) -> ModuleType:
    loaded = importlib.util.spec_from_file_location("deploy_k8s_topics", directory / "topics.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def generated_topics_problems(directory: Path) -> list[str]:
    """kafka-topics.yaml is what deploy/k8s/topics.py generates now."""
    wanted = _topics_module(DEPLOY).render(directory)
    if (directory / "kafka-topics.yaml").read_text() != wanted:
        return ["kafka-topics.yaml is stale: run .venv/bin/python deploy/k8s/topics.py"]
    return []


def setting_problems(docs: list[Doc]) -> list[str]:
    """Every CDP_ variable is a setting, and cdp-config is a valid configuration."""
    fields = {f"CDP_{name.upper()}" for name in Settings.model_fields}
    problems = [
        f"{doc['metadata']['name']}: {name} is not a setting (cdp/settings.py)"
        for doc in find(docs, "ConfigMap", "cdp-config")
        for name in doc["data"]
        if name not in fields
    ]
    problems += [
        f"{doc['metadata']['name']}/{container['name']}: {item['name']} is not a setting"
        for doc, container in cdp_containers(docs)
        for item in container.get("env", [])
        if item["name"].startswith("CDP_") and item["name"] not in fields
    ]
    if not problems:
        config = cdp_config(docs)
        try:
            load_settings(**{name[4:].lower(): value for name, value in config.items()})
        except Exception as exc:
            problems.append(f"cdp-config: {exc}")
    return problems


def command_problems(docs: list[Doc]) -> list[str]:
    """Every cdp container runs a real `cdp` command (the image's entrypoint is `cdp`)."""
    commands = set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]
    return [
        f"{doc['metadata']['name']}/{container['name']}: args {container.get('args')}"
        for doc, container in cdp_containers(docs)
        if container.get("command")
        or not container.get("args")
        or container["args"][0] not in commands
    ]


def worker_problems(docs: list[Doc]) -> list[str]:
    """Workers: 1 <= replicas <= partitions; probes on the metrics port, reachable."""
    (worker,) = [
        d for d, c in cdp_containers(docs) if d["kind"] == "Deployment" and c["args"] == ["worker"]
    ]
    (container,) = containers(worker)
    env = container_env(docs, container)
    problems = []
    if not 1 <= worker["spec"]["replicas"] <= int(env["CDP_PARTITIONS"]):
        problems.append(
            f"worker replicas {worker['spec']['replicas']} not within 1..CDP_PARTITIONS"
            f" ({env['CDP_PARTITIONS']}): a worker beyond the partition count idles"
        )
    if env["CDP_METRICS_HOST"].startswith(_LOOPBACK) or env["CDP_METRICS_PORT"] == "0":
        problems.append("worker metrics are off or bound to loopback: the probes cannot reach them")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container.get(probe, {}).get("httpGet")
        if get is None or port_number(container, get["port"]) != int(env["CDP_METRICS_PORT"]):
            problems.append(f"worker {probe}: not an HTTP probe of CDP_METRICS_PORT")
    return problems


def api_problems(docs: list[Doc]) -> list[str]:
    """The HPA scales the API Deployment; probes, Service, PDB and key file line up."""
    (api,) = [
        d for d, c in cdp_containers(docs) if d["kind"] == "Deployment" and c["args"] == ["api"]
    ]
    (container,) = containers(api)
    env = container_env(docs, container)
    labels = api["spec"]["template"]["metadata"]["labels"]
    problems = []
    hpas = find(docs, "HorizontalPodAutoscaler")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": api["metadata"]["name"]}
    if [h["spec"]["scaleTargetRef"] for h in hpas] != [target]:
        problems.append(f"exactly one HPA must target {target}")
    if any(h["spec"].get("minReplicas", 1) < 2 for h in hpas):
        problems.append("the API HPA keeps fewer than 2 pods (no redundancy)")
    for kind in ("Service", "PodDisruptionBudget"):
        selectors = [d["spec"]["selector"] for d in find(docs, kind, api["metadata"]["name"])]
        selectors = [s.get("matchLabels", s) for s in selectors]
        if len(selectors) != 1 or not selectors[0].items() <= labels.items():
            problems.append(f"{kind} {api['metadata']['name']} does not select the API pods")
    if env.get("CDP_API_HOST", "127.0.0.1").startswith(_LOOPBACK):
        problems.append("CDP_API_HOST is loopback: the Service cannot reach the API")
    port = int(env["CDP_API_PORT"])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or port_number(container, get.get("port", 0)) != port:
            problems.append(f"API {probe}: not {path} on CDP_API_PORT")
    access = Path(env.get("CDP_ACCESS_CONFIG", "/"))
    volumes = {v["name"]: v for v in (pod_spec(api) or {}).get("volumes", [])}
    mounted = [
        volumes[m["name"]].get("secret", {})
        for m in container.get("volumeMounts", [])
        if access.parent == Path(m["mountPath"])
    ]
    keys = {item["path"]: item["key"] for secret in mounted for item in secret.get("items", [])}
    if not mounted or not mounted[0].get("secretName") or access.name not in keys:
        problems.append("CDP_ACCESS_CONFIG is not a file of a mounted Secret")
    return problems


def kafka_problems(docs: list[Doc]) -> list[str]:
    """3 brokers and 3 controllers (KRaft), RF 3, min ISR 2, no auto-create; bootstrap."""
    kafka = only(docs, "Kafka")
    cluster, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    pools = find(docs, "KafkaNodePool")
    problems = [
        f"{d['kind']} {d['metadata']['name']}: not labelled strimzi.io/cluster={cluster}"
        for d in [*pools, *find(docs, "KafkaTopic")]
        if d["metadata"].get("labels", {}).get("strimzi.io/cluster") != cluster
    ]
    annotations = kafka["metadata"].get("annotations", {})
    if (
        annotations.get("strimzi.io/kraft") != "enabled"
        or annotations.get("strimzi.io/node-pools") != "enabled"
    ):
        problems.append("the Kafka cluster is not KRaft with node pools")
    for role in ("broker", "controller"):
        count = sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"])
        if count != 3:
            problems.append(f"{count} {role}s, 3 wanted")
    config = kafka["spec"]["kafka"].get("config", {})
    wanted = {
        "default.replication.factor": 3,
        "min.insync.replicas": 2,
        "offsets.topic.replication.factor": 3,
        "auto.create.topics.enable": False,
    }
    problems += [
        f"broker config {k}={config.get(k)!r}, {v!r} wanted"
        for k, v in wanted.items()
        if config.get(k) != v
    ]
    if int(cdp_config(docs)["CDP_REPLICATION_FACTOR"]) != 3:
        problems.append("CDP_REPLICATION_FACTOR is not 3")
    ports = [li["port"] for li in kafka["spec"]["kafka"]["listeners"] if not li.get("tls")]
    bootstrap = {f"{cluster}-kafka-bootstrap.{namespace}.svc:{port}" for port in ports}
    if cdp_config(docs)["CDP_KAFKA_BOOTSTRAP"] not in bootstrap:
        problems.append(f"CDP_KAFKA_BOOTSTRAP is not one of {sorted(bootstrap)}")
    return problems


def namespace_problems(docs: list[Doc]) -> list[str]:
    """Everything lives in the one Namespace the manifests create; Redis is one of its Services."""
    (namespace,) = [d["metadata"]["name"] for d in find(docs, "Namespace")]
    problems = [
        f"{d['kind']} {d['metadata']['name']}: namespace {d['metadata'].get('namespace')!r}"
        for d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace
    ]
    host = re.sub(r"^redis://([^:/]+).*$", r"\1", cdp_config(docs)["CDP_REDIS_URL"])
    services = {f"{s['metadata']['name']}.{namespace}.svc" for s in find(docs, "Service")}
    if host not in services:
        problems.append(f"CDP_REDIS_URL host {host} is not a Service of the manifests")
    return problems


CHECKS: dict[str, Callable[[list[Doc]], list[str]]] = {
    "topics": topic_problems,
    "settings": setting_problems,
    "commands": command_problems,
    "worker": worker_problems,
    "api": api_problems,
    "kafka": kafka_problems,
    "namespace": namespace_problems,
}

DOCS = render(DEPLOY)
(CDP_IMAGE_REF,) = {
    f"{i.get('newName', CDP_IMAGE)}:{i.get('newTag', 'latest')}"
    for i in yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["images"]
    if i["name"] == CDP_IMAGE
}


@pytest.mark.parametrize("doc", DOCS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in DOCS])
def test_manifest_is_valid(doc: Doc) -> None:
    assert schema_errors(doc) == []


@pytest.mark.parametrize("check", CHECKS)
def test_manifests_agree_with_the_code(check: str) -> None:
    assert CHECKS[check](DOCS) == []


def test_topic_manifests_are_generated_from_the_code() -> None:
    assert generated_topics_problems(DEPLOY) == []


def test_cdp_containers_run_the_image_of_the_dockerfile() -> None:
    assert 'ENTRYPOINT ["cdp"]' in DOCKERFILE.read_text()  # container args are cdp commands
    kinds = {(doc["kind"], container["args"][0]) for doc, container in cdp_containers(DOCS)}
    assert kinds == {("Deployment", "worker"), ("Deployment", "api"), ("CronJob", "rebuild")}


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}


def test_kubectl_kustomize_renders_the_same() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (render() is checked against it where it is)")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(yaml.safe_load_all(out), key=key) == sorted(DOCS, key=key)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in {path.name}"
    path.write_text(text.replace(old, new))


# case | file (.yaml) | text | replaced by | caught by (a check, or schema); "\n" = line break
BROKEN_CASES = r"""
worker-above-partitions | worker | replicas: 4\n | replicas: 13\n | worker
worker-replicas-not-a-number | worker | replicas: 4\n | replicas: four\n | schema
unknown-deployment-field | api | replicas: 2\n | replica: 2\n | schema
hpa-v1-field | api | maxReplicas: 10 | maxReplicas: 10\n  targetCPUUtilizationPercentage: 1 | schema
hpa-targets-other | api | name: cdp-api\n  minReplicas | name: cdp-web\n  minReplicas | api
topic-field-typo | kafka-topics | cdp.deadletter\n  partitions: | cdp.deadletter\n  part: | schema
topic-partitions | kafka-topics | canonical\n  partitions: 12 | canonical\n  partitions: 6 | topics
stale-topic-file | kafka-topics | reason code and source | reason and source | generated
partitions-raised-alone | config | CDP_PARTITIONS: "12" | CDP_PARTITIONS: "24" | topics
kafka-without-listeners | kafka | listeners: | listenerz: | schema
kafka-min-isr-1 | kafka | min.insync.replicas: 2 | min.insync.replicas: 1 | kafka
unknown-setting | config | CDP_LOG_LEVEL: info | CDP_LOG_LEVEL: info\n  CDP_LOGLEVEL: x | settings
bad-setting-value | config | CDP_PARTITIONS: "12" | CDP_PARTITIONS: "0" | settings
not-a-cdp-command | rebuild | args: [rebuild] | args: [rebuilt] | commands
"""
BROKEN = {
    case: (f"{file}.yaml", old.replace("\\n", "\n"), new.replace("\\n", "\n"), caught_by)
    for case, file, old, new, caught_by in (
        [cell.strip() for cell in row.split(" | ")] for row in BROKEN_CASES.strip().splitlines()
    )
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_manifest_fails(case: str, tmp_path: Path) -> None:
    file, old, new, caught_by = BROKEN[case]
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY, copy)
    _replace(copy / file, old, new)
    docs = render(copy)
    if caught_by == "schema":
        assert [e for d in docs for e in schema_errors(d)]
    elif caught_by == "generated":
        assert generated_topics_problems(copy)
    else:
        assert CHECKS[caught_by](docs)
