"""The manifests against the Kubernetes 1.28 schemas, and the network the policies allow.

Every core resource validates strictly (``kubernetes-validate``, offline schemas; unknown
fields are errors). The NetworkPolicies are evaluated as Kubernetes does (a connection needs
an egress rule of the source and an ingress rule of the destination, once a policy selects
the pod) over the pods the workloads declare, and compared with the architecture's paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

K8S = Path(__file__).resolve().parents[3] / "infra" / "k8s"
VERSION = "1.28.0"
#: Custom resources and the API versions they must use (their operators validate them).
CUSTOM = {
    "Kafka": "kafka.strimzi.io/v1beta2",
    "KafkaNodePool": "kafka.strimzi.io/v1beta2",
    "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
KAFKA = {"strimzi.io/cluster": "tickcast-kafka"}

#: (from, to, port) every path the architecture draws; nothing else may be allowed. The
#: CronJobs: training reads its volume and registers in MLflow; backup reads Kafka, Redis
#: and ClickHouse (infra/k8s/backup-cronjob.yaml says why not MLflow's server).
EXPECTED = {
    *{(c, "kafka", 9092)
      for c in ("worker", "sink", "drift", "learner", "lag-exporter", "api", "backup")},
    ("worker", "redis", 6379), ("learner", "redis", 6379), ("api", "redis", 6379),
    ("backup", "redis", 6379),
    ("api", "clickhouse", 8123), ("sink", "clickhouse", 8123), ("backup", "clickhouse", 8123),
    ("worker", "mlflow", 5000), ("learner", "mlflow", 5000), ("api", "mlflow", 5000),
    ("drift", "mlflow", 5000), ("training", "mlflow", 5000),
    ("api", "worker", 9101),
}  # fmt: skip
#: Every port a pod of the namespace listens on.
PORTS = {9092, 6379, 8123, 9000, 5000, 9101, 9102, 9103, 9104, 9308, 8000}


def _pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload (a CronJob's is inside its job template)."""
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return dict(spec["template"])


def _docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


@pytest.mark.parametrize(
    "doc", _docs(), ids=lambda d: f"{d['kind']}/{d.get('metadata', {}).get('name', '')}"
)
def test_each_resource_validates_strictly_against_kubernetes_1_28(doc: dict[str, Any]) -> None:
    if doc["kind"] in CUSTOM:
        assert doc["apiVersion"] == CUSTOM[doc["kind"]]
        with pytest.raises(SchemaNotFoundError):  # really not a core kind
            kubernetes_validate.validate(doc, VERSION, strict=True)
        return
    kubernetes_validate.validate(doc, VERSION, strict=True)


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present = expr["key"] in labels
        inside = labels.get(expr["key"]) in expr.get("values", [])
        ok = {"In": inside, "NotIn": not inside, "Exists": present, "DoesNotExist": not present}
        if not ok[expr["operator"]]:
            return False
    return True


def _peer_ok(peers: list[dict[str, Any]] | None, labels: dict[str, str]) -> bool:
    """Whether a rule's ``from``/``to`` admits a pod of this namespace with ``labels``."""
    if not peers:
        return True  # no peers: everyone
    return any(
        "namespaceSelector" not in peer and _matches(peer.get("podSelector"), labels)
        for peer in peers
    )


def _port_ok(ports: list[dict[str, Any]] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


class Network:
    """Pods (label sets) and policies; :meth:`allowed` answers as the CNI would."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        self.pods: dict[str, dict[str, str]] = {"kafka": {**KAFKA}}
        for doc in docs:
            if doc["kind"] in {"Deployment", "StatefulSet", "CronJob"}:
                labels = _pod_template(doc)["metadata"]["labels"]
                name = labels.get("app.kubernetes.io/component") or labels["app.kubernetes.io/name"]
                self.pods[name] = labels
        kafka = next(d for d in docs if d["kind"] == "Kafka")
        listener = kafka["spec"]["kafka"]["listeners"][0]
        self.kafka_peers = listener.get("networkPolicyPeers")
        self.kafka_port = listener["port"]

    def _selected(self, labels: dict[str, str], kind: str) -> list[dict[str, Any]]:
        return [
            p for p in self.policies
            if kind in p["spec"]["policyTypes"] and (
                p["spec"]["podSelector"] == {} or _matches(p["spec"]["podSelector"], labels))
        ]  # fmt: skip

    def allowed(self, source: str, target: str, port: int) -> bool:
        src, dst = self.pods[source], self.pods[target]
        egress = self._selected(src, "Egress")
        out = not egress or any(
            _peer_ok(rule.get("to"), dst) and _port_ok(rule.get("ports"), port)
            for policy in egress
            for rule in policy["spec"].get("egress", [])
        )
        if target == "kafka":  # Strimzi writes the brokers' policy from networkPolicyPeers
            return out and port == self.kafka_port and _peer_ok(self.kafka_peers, src)
        ingress = self._selected(dst, "Ingress")
        into = not ingress or any(
            _peer_ok(rule.get("from"), src) and _port_ok(rule.get("ports"), port)
            for policy in ingress
            for rule in policy["spec"].get("ingress", [])
        )
        return out and into


def test_the_policies_allow_exactly_the_paths_the_architecture_draws() -> None:
    network = Network(_docs())
    assert {"worker", "sink", "drift", "learner", "lag-exporter", "api", "training",
            "backup"} <= set(network.pods)  # fmt: skip
    allowed = {
        (a, b, port)
        for a in network.pods
        for b in network.pods
        for port in PORTS
        if a != b and network.allowed(a, b, port)
    }
    assert allowed == EXPECTED


def test_everything_else_is_denied_by_default_and_dns_is_open() -> None:
    docs = _docs()
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["allow-dns"]
    assert {p["port"] for p in dns["spec"]["egress"][0]["ports"]} == {53}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "network-policies.yaml" in kustomization["resources"]


def test_the_evaluator_refuses_what_a_policy_does_not_name() -> None:
    """The evaluator itself: a path with no rule is refused; removing the deny opens it."""
    docs = _docs()
    network = Network(docs)
    assert not network.allowed("sink", "redis", 6379)
    assert not network.allowed("lag-exporter", "mlflow", 5000)
    assert not network.allowed("worker", "clickhouse", 8123)
    assert not network.allowed("training", "kafka", 9092)  # NotIn: the evaluator's own case
    assert not network.allowed("training", "clickhouse", 8123)
    assert network.allowed("backup", "clickhouse", 8123)
    open_network = Network([d for d in docs if d["kind"] != "NetworkPolicy"])
    assert open_network.allowed("sink", "redis", 6379)
