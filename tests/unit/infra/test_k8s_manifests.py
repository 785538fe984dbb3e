"""The Kubernetes manifests in infra/k8s: they parse, are complete, and cannot drift.

Generated files equal a fresh render, every ``TICKCAST_*`` variable is a Settings field, every
``tickcast ...`` command (and its options) exists in the CLI, and the cluster configuration
(ConfigMap + example Secret) is a valid production ``Settings``.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer.main
import yaml

from streams.topics import load_topic_spec
from tickcast.cli import app
from tickcast.config import DEV_SECRET, Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "infra" / "k8s"
#: Applied by hand with a real secret, never by `kubectl apply -k` (see its header).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "kustomization.yaml"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"}


def _manifest_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _all_docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (p.name, d) for p in _manifest_files() if p.name != "kustomization.yaml" for d in _docs(p)
    ]


def _pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload (a CronJob's is inside its job template)."""
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return dict(spec["template"])


def _containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] not in WORKLOAD_KINDS:
        return
    pod = _pod_template(doc)["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def _tickcast_argvs(container: dict[str, Any]) -> list[list[str]]:
    """Each ``tickcast ...`` invocation of a container: its command, or the lines of a
    ``/bin/sh -c`` script (up to a shell operator), without the leading ``tickcast``."""
    argv = list(container.get("command", [])) + list(container.get("args", []))
    if argv[:1] == ["tickcast"]:
        return [argv[1:]]
    if argv[:1] != ["/bin/sh"] or not argv[1].startswith("-") or "c" not in argv[1]:
        return []
    found = []
    for line in argv[2].splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["tickcast"]:
            stop = [i for i, w in enumerate(words) if w in {"&&", "||", ";", "|"}]
            found.append(words[1 : stop[0] if stop else len(words)])
    return found


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_topics", K8S / "render_topics.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_topics", module)
    spec.loader.exec_module(module)
    return module


def _configmap() -> dict[str, str]:
    (doc,) = _docs(K8S / "configmap.yaml")
    return {str(k): str(v) for k, v in doc["data"].items()}


def test_there_are_manifests() -> None:
    names = {p.name for p in _manifest_files()}
    assert {"kustomization.yaml", "worker-statefulset.yaml", "api-hpa.yaml"} <= names


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.name)
def test_every_manifest_parses_and_names_its_objects(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path.name} holds no object"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion"), f"{path.name}: object without apiVersion"
        assert doc.get("kind"), f"{path.name}: object without kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path.name}: {doc['kind']} unnamed"


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in _manifest_files()} - NOT_IN_KUSTOMIZATION
    assert listed == on_disk
    assert "secret.example.yaml" not in listed  # a placeholder secret must never be applied


def test_object_names_are_unique_per_kind() -> None:
    keys = [(d["kind"], d["metadata"]["name"]) for _, d in _all_docs()]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_generated_files_equal_a_fresh_render() -> None:
    rendered = _render_module().render_all()
    assert set(rendered) == {K8S / "kafka-topics.yaml", K8S / "prometheus-rules.yaml"}
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run .venv/bin/python infra/k8s/render_topics.py"
        )


def test_kafka_topics_match_the_topic_spec() -> None:
    spec = load_topic_spec(ROOT / "infra" / "kafka" / "topics.yaml")
    partitions = int(_configmap()["TICKCAST_PARTITIONS"])
    topics = {d["spec"]["topicName"]: d for d in _docs(K8S / "kafka-topics.yaml")}
    assert set(topics) == {t.name for t in spec.topics}
    for t in spec.topics:
        doc = topics[t.name]
        assert doc["kind"] == "KafkaTopic"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "tickcast-kafka"
        assert doc["spec"]["partitions"] == (partitions if t.per_symbol else t.partitions)
        assert doc["spec"]["replicas"] == 3
        config = doc["spec"]["config"]
        assert config["min.insync.replicas"] == "2"
        assert config["retention.ms"] == str(t.retention_ms)
        assert config["cleanup.policy"] == t.cleanup_policy
        for key, value in t.configs.items():
            assert config[key] == value


def test_prometheus_rule_wraps_the_alert_rules_verbatim() -> None:
    alerts = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text(encoding="utf-8"))
    (rule,) = _docs(K8S / "prometheus-rules.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == alerts["groups"]


def test_k8s_name_is_dns_safe() -> None:
    k8s_name = _render_module().k8s_name
    assert k8s_name("ticks.dlq") == "ticks-dlq"
    assert k8s_name("Model_Events") == "model-events"


def _env_names() -> list[tuple[str, str]]:
    names = [("configmap.yaml", key) for key in _configmap()]
    (secret,) = _docs(K8S / "secret.example.yaml")
    names += [("secret.example.yaml", key) for key in secret["stringData"]]
    for file, doc in _all_docs():
        for container in _containers(doc):
            names += [(file, env["name"]) for env in container.get("env", [])]
    return names


def test_every_tickcast_variable_is_a_settings_field() -> None:
    fields = {f"TICKCAST_{name.upper()}" for name in Settings.model_fields}
    names = [(f, n) for f, n in _env_names() if n.startswith("TICKCAST_")]
    assert len(names) >= 15
    unknown = [(f, n) for f, n in names if n not in fields]
    assert not unknown, f"not fields of tickcast.config.Settings: {unknown}"


def test_cluster_settings_are_a_valid_production_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("TICKCAST_")]:
        monkeypatch.delenv(key)
    (secret,) = _docs(K8S / "secret.example.yaml")
    env = {**_configmap(), **secret["stringData"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.jwt_secret.get_secret_value() != DEV_SECRET
    assert settings.kafka_bootstrap == "tickcast-kafka-kafka-bootstrap:9092"
    assert settings.clickhouse == "http://clickhouse:8123"
    assert settings.mlflow_uri == "http://mlflow:5000"
    assert settings.partitions == 12
    # The development secret is refused with the same production environment.
    monkeypatch.setenv("TICKCAST_JWT_SECRET", DEV_SECRET)
    with pytest.raises(ValueError, match="TICKCAST_JWT_SECRET"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command ``tickcast argv...`` runs, and the option names it was given.

    Duck-typed (``commands`` marks a group): typer may bring its own copy of click.
    """
    command: Any = typer.main.get_command(app)
    args = list(argv)
    while args and hasattr(command, "commands") and not args[0].startswith("-"):
        name = args.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`tickcast {' '.join(argv)}`: no command {name!r}"
        command = sub
    assert not args or args[0].startswith("-"), f"`tickcast {' '.join(argv)}`: stray {args[0]}"
    return command, [a for a in args if a.startswith("--")]


def _tickcast_commands() -> list[tuple[str, list[str]]]:
    found = []
    for file, doc in _all_docs():
        for container in _containers(doc):
            found += [(f"{file}:{container['name']}", a) for a in _tickcast_argvs(container)]
    return found


def test_every_tickcast_command_exists_with_its_options() -> None:
    commands = _tickcast_commands()
    used = set()
    for _, argv in commands:
        first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
        used.add(" ".join(argv[:first_option]))
    assert {"worker", "serve", "sink run", "sink migrate", "drift", "learner run", "train",
            "backup"} <= used  # fmt: skip
    for where, argv in commands:
        command, options = _resolve(argv)
        known = {opt for param in command.params for opt in param.opts}
        missing = [o for o in options if o not in known]
        assert not missing, f"{where}: `tickcast {' '.join(argv)}` has no option {missing}"


def test_shell_scripts_are_searched_for_tickcast_commands() -> None:
    script = {"command": ["/bin/sh", "-ec", 'd=/b/x\ntickcast backup --to "$d" && ls  # c\n']}
    assert _tickcast_argvs(script) == [["backup", "--to", "$d"]]
    assert _tickcast_argvs({"command": ["mlflow", "server"]}) == []


def _workload(name: str) -> dict[str, Any]:
    (doc,) = [
        d for _, d in _all_docs() if d["kind"] in WORKLOAD_KINDS and d["metadata"]["name"] == name
    ]
    return doc


def test_worker_is_a_statefulset_within_the_partition_count() -> None:
    worker = _workload("tickcast-worker")
    assert worker["kind"] == "StatefulSet"
    assert 1 <= worker["spec"]["replicas"] <= int(_configmap()["TICKCAST_PARTITIONS"])
    assert worker["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["tickcast", "worker"]
    assert command[command.index("--runner") + 1] == "direct"  # the default runner, explicitly
    port = int(command[command.index("--metrics-port") + 1])
    assert {p["containerPort"] for p in container["ports"]} == {port}
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]


def test_learner_is_a_single_replica() -> None:
    learner = _workload("tickcast-learner")
    assert learner["spec"]["replicas"] == 1
    assert learner["spec"]["strategy"]["type"] == "Recreate"


def test_api_probes_and_autoscaler() -> None:
    api = _workload("tickcast-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tickcast", "serve", "--host", "0.0.0.0"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (hpa,) = _docs(K8S / "api-hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "tickcast-api"
    assert hpa["spec"]["minReplicas"] >= 2
    kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["target"]["averageUtilization"] == 70
    assert kinds["Pods"]["pods"]["metric"]["name"] == "tickcast_http_requests_per_second"
    assert "replicas" not in api["spec"]  # the HPA owns the replica count


def test_every_tickcast_pod_reads_the_config_and_the_secret() -> None:
    for file, doc in _all_docs():
        for container in _containers(doc):
            if not _tickcast_argvs(container):
                continue  # e.g. the MLflow server, which runs from the same image
            refs = {next(iter(r.values()))["name"] for r in container.get("envFrom", [])}
            assert refs == {"tickcast-config", "tickcast-secrets"}, f"{file}:{container['name']}"


def _long_running() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in _all_docs() if d["kind"] in {"Deployment", "StatefulSet"}]


def test_every_container_has_requests_and_a_memory_limit() -> None:
    for file, doc in _all_docs():
        for container in _containers(doc):
            resources = container.get("resources", {})
            where = f"{file}:{container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where


def test_every_long_running_container_has_a_liveness_probe_on_a_declared_port() -> None:
    for file, doc in _long_running():
        for container in _pod_template(doc)["spec"]["containers"]:
            probes = [container[k] for k in ("livenessProbe", "readinessProbe") if k in container]
            assert "livenessProbe" in container, f"{file}:{container['name']}"
            names = {p.get("name") for p in container.get("ports", [])}
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            for probe in probes:
                check = probe.get("httpGet") or probe.get("tcpSocket")
                if check is not None:  # exec probes name no port
                    assert check["port"] in names | numbers, f"{file}:{container['name']}"


def test_the_sink_and_drift_probes_call_their_metrics_port() -> None:
    for name in ("tickcast-sink", "tickcast-drift"):
        (container,) = _pod_template(_workload(name))["spec"]["containers"]
        port = container["command"][container["command"].index("--metrics-port") + 1]
        assert container["ports"] == [{"name": "metrics", "containerPort": int(port)}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are checked here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_every_long_running_workload_has_one_disruption_budget_that_lets_drains_go_on() -> None:
    budgets = [d for _, d in _all_docs() if d["kind"] == "PodDisruptionBudget"]
    covered = set()
    for file, doc in _long_running():
        labels = _pod_template(doc)["metadata"]["labels"]
        mine = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(mine) == 1, f"{file}: {doc['metadata']['name']} has {len(mine)} budgets"
        (budget,) = mine
        covered.add(budget["metadata"]["name"])
        replicas = doc["spec"].get("replicas")  # None: the API's HPA (minReplicas 2)
        spec = budget["spec"]
        if replicas == 1:
            assert spec == {**spec, "maxUnavailable": 1}, "a single pod must stay evictable"
        else:
            assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 1
    assert covered == {b["metadata"]["name"] for b in budgets}, "a budget selects no workload"


def _cronjob(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    job = _workload(name)
    assert job["kind"] == "CronJob"
    return job, _pod_template(job)["spec"]


def _claims() -> set[str]:
    return {d["metadata"]["name"] for _, d in _all_docs() if d["kind"] == "PersistentVolumeClaim"}


def test_the_daily_training_cronjob() -> None:
    job, pod = _cronjob("tickcast-training")
    assert job["spec"]["schedule"].split()[2:] == ["*", "*", "*"]  # daily
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"][:2] == ["tickcast", "train"]
    dataset = container["command"][container["command"].index("--dataset") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert Path(dataset).parent.as_posix() in mounts  # the bars are on the job's volume
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] in _claims()


def test_the_daily_backup_cronjob_writes_a_new_dated_directory() -> None:
    job, pod = _cronjob("tickcast-backup")
    assert job["spec"]["schedule"].split()[2:] == ["*", "*", "*"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod["containers"]
    (argv,) = _tickcast_argvs(container)
    assert argv[0] == "backup"
    assert argv[argv.index("--to") + 1] == "$dir"
    assert 'dir="/backups/$(date -u +' in container["command"][2]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = {v["name"]: v for v in pod["volumes"]}[mounts["/backups"]]["persistentVolumeClaim"]
    assert claim["claimName"] in _claims()
    # ClickHouse writes its BACKUP at the same path on its node: same volume, same path.
    clickhouse = _pod_template(_workload("clickhouse"))["spec"]
    (server,) = clickhouse["containers"]
    shared = {v["name"] for v in clickhouse["volumes"] if v.get("persistentVolumeClaim", {})
              .get("claimName") == claim["claimName"]}  # fmt: skip
    assert {m["mountPath"] for m in server["volumeMounts"] if m["name"] in shared} == {"/backups"}
    affinity = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity[0]["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "clickhouse"}
