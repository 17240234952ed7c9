#!/usr/bin/env python3
"""Checks of a rendered overlay that schema validation and checkov do not make.

Usage: check_manifests.py dev|prod RENDERED.yaml   (deploy/check.sh runs it with its venv's Python)

- The NetworkPolicies, evaluated as Kubernetes does (a connection needs the source's egress and
  the destination's ingress), allow exactly the calls of ARCHITECTURE.md's "Calls between
  services" table between the system's pods, the bureau's clients on the gRPC ports, Prometheus
  on the metrics ports, DNS, the OTLP collector and the backing stores, and nothing else.
- Every service: probes are native gRPC probes on the port that serves plaintext health (the
  gRPC port without TLS, the health-only port with TLS), the Prometheus annotations name the
  metrics port, the peer endpoints are exactly the calls the table gives it.
- Every pod: the hardened security context, requests and limits on every container.
- prod: TLS on, at least 2 replicas, an autoscaling/v2 HorizontalPodAutoscaler and a
  PodDisruptionBudget per service; no Secret objects (prod references externally created ones).
- The migration Job runs `--migrate-only` for all four services.
- Every checkov skip annotation names a check and gives a reason.
"""

from __future__ import annotations

import ipaddress
import re
import sys

import yaml

SERVICES = {
    # name: (gRPC port, plaintext health port with TLS, metrics port)
    "registry": (50051, 50061, 9101),
    "recruitment": (50052, 50062, 9102),
    "dispatch": (50053, 50063, 9103),
    "finance": (50054, 50064, 9104),
}
# ARCHITECTURE.md, "Calls between services": caller -> callee.
CALLS = {
    ("recruitment", "registry"),
    ("dispatch", "registry"),
    ("registry", "dispatch"),
    ("dispatch", "finance"),
    ("finance", "registry"),
}
MIGRATE = "supervision-migrate"
UID = 10001

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


# --- label selectors and network policies ------------------------------------------------------


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector against a label set; an empty selector selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Endpoint:
    """A pod (namespace, its labels, pod labels) or an outside address."""

    def __init__(self, name: str, namespace: str | None = None, ns_labels: dict | None = None,
                 labels: dict | None = None, ip: str | None = None):
        self.name, self.namespace, self.ns_labels = name, namespace, ns_labels or {}
        self.labels, self.ip = labels or {}, ip

    def __repr__(self) -> str:
        return self.name


def peer_matches(peer: dict, other: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False  # pod IPs are not what these policies mean to name
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if other.ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector"), other.labels)


def port_matches(rule: dict, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        start = p.get("port")
        if start is None or (start <= port <= p.get("endPort", start)):
            return True
    return False


def allowed(policies: list[dict], namespace: str, src: Endpoint, dst: Endpoint, port: int,
            sides: tuple[str, ...] = ("Egress", "Ingress")) -> bool:
    def side(pod: Endpoint, other: Endpoint, kind: str, peers_key: str) -> bool:
        if pod.namespace != namespace:
            return True  # outside this namespace: not ours to restrict
        applying = [p for p in policies if kind in p["spec"].get("policyTypes", ["Ingress"])
                    and selects(p["spec"].get("podSelector"), pod.labels)]
        if not applying:
            return True
        for policy in applying:
            for rule in policy["spec"].get(kind.lower()) or []:
                peers = rule.get(peers_key)
                if (not peers or any(peer_matches(peer, other, namespace) for peer in peers)) \
                        and port_matches(rule, port):
                    return True
        return False

    return ("Egress" not in sides or side(src, dst, "Egress", "to")) and \
        ("Ingress" not in sides or side(dst, src, "Ingress", "from"))


# --- the checks ------------------------------------------------------------------------------


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def check_pod_hardening(kind: str, name: str, spec: dict) -> None:
    what = f"{kind} {name}"
    if spec.get("automountServiceAccountToken") is not False:
        fail(f"{what}: automountServiceAccountToken is not false")
    sc = spec.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True:
        fail(f"{what}: pod runAsNonRoot is not true")
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        fail(f"{what}: pod seccompProfile is not RuntimeDefault")
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        cwhat = f"{what} container {c['name']}"
        csc = c.get("securityContext") or {}
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(f"{cwhat}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(f"{cwhat}: allowPrivilegeEscalation is not false")
        if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
            fail(f"{cwhat}: capabilities do not drop ALL")
        if csc.get("runAsUser", sc.get("runAsUser")) != UID:
            fail(f"{cwhat}: does not run as UID {UID}")
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    fail(f"{cwhat}: no {resource} {section[:-1]}")


def check_service(overlay: str, deployment: dict) -> None:
    name = deployment["metadata"]["name"]
    grpc_port, health_port, metrics_port = SERVICES[name]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = env_of(container)
    tls = "TLS_CERT_FILE" in env
    if overlay == "prod" and not tls:
        fail(f"{name}: TLS is off in prod")
    probe_port = health_port if tls else grpc_port
    if tls and env.get("HEALTH_LISTEN") != f"0.0.0.0:{health_port}":
        fail(f"{name}: TLS is on but HEALTH_LISTEN is not 0.0.0.0:{health_port}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc = (container.get(probe) or {}).get("grpc")
        if not grpc or grpc.get("port") != probe_port:
            fail(f"{name}: {probe} is not a gRPC probe on port {probe_port}")
    if container["command"] != [f"/usr/local/bin/{name}"]:
        fail(f"{name}: command is {container['command']}")
    if env.get(f"{name.upper()}_LISTEN") != f"0.0.0.0:{grpc_port}":
        fail(f"{name}: {name.upper()}_LISTEN is not 0.0.0.0:{grpc_port}")
    if env.get("METRICS_LISTEN") != f"0.0.0.0:{metrics_port}":
        fail(f"{name}: METRICS_LISTEN is not 0.0.0.0:{metrics_port}")
    if not isinstance(env.get(f"{name.upper()}_DATABASE_URL"), dict):
        fail(f"{name}: {name.upper()}_DATABASE_URL does not come from a Secret")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port),
            "prometheus.io/path": "/metrics"}
    for key, value in want.items():
        if annotations.get(key) != value:
            fail(f"{name}: pod annotation {key} is not {value!r}")
    peers = {k[: -len("_ENDPOINT")].lower() for k in env if k.endswith("_ENDPOINT")}
    wanted_peers = {callee for caller, callee in CALLS if caller == name}
    if peers != wanted_peers:
        fail(f"{name}: peer endpoints {sorted(peers)}, the calls table gives {sorted(wanted_peers)}")
    scheme = "https" if tls else "http"
    for peer in peers:
        want_url = f"{scheme}://{peer}:{SERVICES[peer][0]}"
        if env[f"{peer.upper()}_ENDPOINT"] != want_url:
            fail(f"{name}: {peer.upper()}_ENDPOINT is not {want_url}")
    if ("PERSONAL_DATA_KEY_FILE" in env) != (name in ("registry", "recruitment")):
        fail(f"{name}: PERSONAL_DATA_KEY_FILE only belongs to registry and recruitment")
    if spec.get("terminationGracePeriodSeconds", 30) < 15:
        fail(f"{name}: terminationGracePeriodSeconds leaves no time to drain")


def main() -> int:
    overlay, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (namespace_obj,) = by_kind.get("Namespace", [None])
    namespace = namespace_obj["metadata"]["name"]
    ns_labels = {**namespace_obj["metadata"].get("labels", {}), "kubernetes.io/metadata.name": namespace}

    # checkov skips: each names a check and gives a reason.
    for d in docs:
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip") and not re.fullmatch(r"CKV2?_K8S_\d+=.{40,}", value, re.S):
                fail(f"{d['kind']} {d['metadata']['name']}: checkov skip without a real reason: {value!r}")

    workloads = {}
    for kind in ("Deployment", "StatefulSet", "Job"):
        for w in by_kind.get(kind, []):
            workloads[w["metadata"]["name"]] = w
            check_pod_hardening(kind, w["metadata"]["name"], w["spec"]["template"]["spec"])

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    for name in SERVICES:
        if name not in deployments:
            fail(f"no Deployment {name}")
            continue
        check_service(overlay, deployments[name])
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for name, (grpc_port, _, _) in SERVICES.items():
        ports = [p["port"] for p in (services.get(name) or {"spec": {"ports": []}})["spec"]["ports"]]
        if grpc_port not in ports:
            fail(f"no Service {name} on port {grpc_port}")

    job = workloads.get(MIGRATE)
    if not job or job["kind"] != "Job":
        fail("no migration Job")
    else:
        spec = job["spec"]["template"]["spec"]
        commands = [c["command"] for c in (spec.get("initContainers") or []) + spec["containers"]]
        want = [[f"/usr/local/bin/{s}", "--migrate-only"] for s in SERVICES]
        if sorted(commands) != sorted(want):
            fail(f"migration Job runs {commands}")

    if overlay == "prod":
        if by_kind.get("Secret"):
            fail("prod renders Secret objects; it must only reference externally created ones")
        hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", [])}
        pdbs = by_kind.get("PodDisruptionBudget", [])
        for name, d in deployments.items():
            if name not in SERVICES:
                continue
            if d["spec"].get("replicas", 1) < 2:
                fail(f"{name}: fewer than 2 replicas in prod")
            hpa = hpas.get(name)
            if not hpa or hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"].get("minReplicas", 1) < 2:
                fail(f"{name}: no autoscaling/v2 HorizontalPodAutoscaler with minReplicas >= 2")
            labels = d["spec"]["template"]["metadata"]["labels"]
            if not any(selects(p["spec"]["selector"], labels) for p in pdbs):
                fail(f"{name}: no PodDisruptionBudget")

    # --- the network matrix ---
    policies = by_kind.get("NetworkPolicy", [])
    pods = {}
    ports = {}
    for name, w in workloads.items():
        template = w["spec"]["template"]
        pods[name] = Endpoint(name, namespace, ns_labels, template["metadata"]["labels"])
        ports[name] = sorted({p["containerPort"] for c in template["spec"]["containers"]
                              for p in c.get("ports") or []})
    backing = {"postgres": 5432, "redis": 6379}
    expected = {(a, b, SERVICES[b][0]) for a, b in CALLS}
    for name in list(SERVICES) + [MIGRATE]:
        if "postgres" in pods:
            expected.add((name, "postgres", 5432))
        if "redis" in pods and name != MIGRATE:
            expected.add((name, "redis", 6379))
    # Each side on its own is as tight as the pair: the callers' egress rules and the callees'
    # ingress rules each allow exactly these paths.
    for sides in (("Egress", "Ingress"), ("Egress",), ("Ingress",)):
        got = {(a, b, port) for a in pods for b in pods for port in ports[b]
               if a != b and allowed(policies, namespace, pods[a], pods[b], port, sides)}
        label = "/".join(s.lower() for s in sides)
        for extra in sorted(got - expected):
            fail("network ({}): {} -> {}:{} is allowed but is not a call of the table".format(label, *extra))
        for missing in sorted(expected - got):
            fail("network ({}): {} -> {}:{} is a needed path but is not allowed".format(label, *missing))

    outsiders = {
        "client-namespace pod": Endpoint("client-namespace pod", "bureau-apps",
                                         {"kubernetes.io/metadata.name": "bureau-apps",
                                          "supervision.jiangmen.gov.cn/client": "true"}, {"app": "oa"}),
        "client pod in this namespace": Endpoint("client pod in this namespace", namespace, ns_labels,
                                                 {"supervision.jiangmen.gov.cn/client": "true"}),
        "unlabelled pod elsewhere": Endpoint("unlabelled pod elsewhere", "other",
                                             {"kubernetes.io/metadata.name": "other"},
                                             {"supervision.jiangmen.gov.cn/client": "true"}),
        "unlabelled pod here": Endpoint("unlabelled pod here", namespace, ns_labels, {"app": "debug"}),
        "prometheus": Endpoint("prometheus", "monitoring", {"kubernetes.io/metadata.name": "monitoring"},
                               {"app.kubernetes.io/name": "prometheus"}),
    }
    for who, outsider in outsiders.items():
        for name, pod in pods.items():
            for port in ports[name]:
                ok = allowed(policies, namespace, outsider, pod, port)
                grpc = name in SERVICES and port == SERVICES[name][0]
                metrics = name in SERVICES and port == SERVICES[name][2]
                want = (grpc and who.startswith("client")) or (metrics and who == "prometheus")
                if ok != want:
                    fail(f"network: {who} -> {name}:{port} is {'allowed' if ok else 'denied'}")
            for port in (50051, 443, 9101):
                if allowed(policies, namespace, pod, outsider, port):
                    fail(f"network: {name} -> {who}:{port} is allowed")

    dns = Endpoint("kube-dns", "kube-system", {"kubernetes.io/metadata.name": "kube-system"},
                   {"k8s-app": "kube-dns"})
    otlp = Endpoint("otel-collector", "observability", {"kubernetes.io/metadata.name": "observability"},
                    {"app.kubernetes.io/name": "opentelemetry-collector"})
    internet = Endpoint("an outside address", ip="203.0.113.7")
    for name, pod in pods.items():
        if not allowed(policies, namespace, pod, dns, 53):
            fail(f"network: {name} cannot reach DNS")
        if allowed(policies, namespace, pod, otlp, 4317) != (name in SERVICES):
            fail(f"network: OTLP egress from {name} is wrong")
        for port in (443, 5432, 6379):
            if allowed(policies, namespace, pod, internet, port):
                fail(f"network: {name} reaches an outside address on {port}")
    if overlay == "prod":
        # The managed stores, by the addresses in overlays/prod/networkpolicy-backends.yaml.
        blocks = {}
        for p in policies:
            for rule in p["spec"].get("egress") or []:
                for peer in rule.get("to") or []:
                    if "ipBlock" in peer:
                        for port in rule.get("ports") or []:
                            blocks.setdefault(port["port"], peer["ipBlock"]["cidr"])
        for port, users in ((5432, list(SERVICES) + [MIGRATE]), (6379, list(SERVICES))):
            if port not in blocks:
                fail(f"prod: no egress to the managed store on {port}")
                continue
            store = Endpoint(f"managed store :{port}", ip=str(ipaddress.ip_network(blocks[port])[0]))
            for name, pod in pods.items():
                if allowed(policies, namespace, pod, store, port) != (name in users):
                    fail(f"network: egress from {name} to the managed store on {port} is wrong")

    if errors:
        for e in errors:
            print(f"FAIL {overlay}: {e}")
        return 1
    print(f"{overlay}: {len(docs)} objects; network paths between the system's pods: "
          + ", ".join(f"{a}->{b}:{p}" for a, b, p in sorted(got)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
