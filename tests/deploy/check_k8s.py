#!/usr/bin/env python3
"""Offline checks of deploy/k8s/: no cluster or API schema is reachable here, so this checks what would break a
deployment: each object's required fields, that selectors, services, secrets, volumes and ports refer to what exists,
that the worker group's torchrun variables and GPU requests are consistent, and that every flag the containers pass
is one the binaries accept (from their --help).

usage: check_k8s.py DEPLOY_DIR VIDGEN_SERVER VIDGEN_WORKER
       check_k8s.py --self-test DEPLOY_DIR VIDGEN_SERVER VIDGEN_WORKER: the manifests pass, and copies with one
       mistake each do not"""
import glob
import os
import re
import subprocess
import sys

import yaml

API_VERSIONS = {"Service": "v1", "Secret": "v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}
errors = []


def check(condition, message):
    if not condition:
        errors.append(message)
    return condition


def flags_of(binary):
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"].get("labels", {})


def main(deploy_dir, server_bin, worker_bin):
    objects = []
    for path in sorted(glob.glob(os.path.join(deploy_dir, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                name = f"{os.path.basename(path)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                kind = doc.get("kind")
                if check(kind in API_VERSIONS, f"{name}: unexpected kind"):
                    check(doc.get("apiVersion") == API_VERSIONS[kind], f"{name}: apiVersion {doc.get('apiVersion')}")
                check(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"] or ""),
                      f"{name}: not a DNS-1123 name")
                objects.append((name, doc))
    by_kind = {}
    for name, doc in objects:
        by_kind.setdefault(doc["kind"], []).append((name, doc))
    secrets = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Secret", [])}
    services = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Service", [])}
    binaries = {"vidgen-server": flags_of(server_bin), "vidgen-worker": flags_of(worker_bin)}

    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Job", [])
    check(by_kind.get("StatefulSet"), "no StatefulSet for the server")
    check(by_kind.get("Job"), "no Job for a worker group")
    for name, doc in workloads:
        labels = pod_labels(doc)
        spec = pod_spec(doc)
        selector = doc["spec"].get("selector", {}).get("matchLabels")
        if selector is not None:
            check(selector.items() <= labels.items(), f"{name}: selector does not match the pod labels")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                check(secret in secrets, f"{name}: secret {secret} is not defined")
        for container in spec["containers"]:
            where = f"{name}: container {container['name']}"
            command = container.get("command", [])
            if check(command and command[0] in binaries, f"{where}: runs {command}, not a vidgen binary"):
                for arg in container.get("args", []):
                    if arg.startswith("--"):
                        flag = arg.split("=")[0]
                        check(flag in binaries[command[0]], f"{where}: {command[0]} has no flag {flag}")
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    grpc = container[probe].get("grpc")
                    check(grpc and grpc["port"] in ports.values(), f"{where}: {probe} is not grpc on a served port")
            for mount in container.get("volumeMounts", []):
                check(mount["name"] in volumes or mount["name"] in claims,
                      f"{where}: mounts {mount['name']}, which is no volume")
            annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
            if "prometheus.io/port" in annotations:
                check(int(annotations["prometheus.io/port"]) in ports.values(),
                      f"{where}: prometheus.io/port is no container port")
                listen = [a for a in container.get("args", []) if a.startswith("--metrics-listen=")]
                check(listen and listen[0].endswith(":" + annotations["prometheus.io/port"]),
                      f"{where}: --metrics-listen does not serve the annotated port")
            for arg in container.get("args", []):
                if arg.startswith("--keys-file=") or arg.startswith("--worker-token-file="):
                    path = arg.split("=", 1)[1]
                    mounted = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")]
                    if check(mounted, f"{where}: {path} is not on a mounted volume"):
                        volume = volumes.get(mounted[0]["name"], {})
                        secret = secrets.get(volume.get("secret", {}).get("secretName"), {})
                        check(os.path.basename(path) in secret.get("stringData", {}),
                              f"{where}: {path} is not a key of its secret")
        # Some Service selects these pods.
        check(any(s["spec"].get("selector") and s["spec"]["selector"].items() <= labels.items()
                  for s in services.values()), f"{name}: no Service selects its pods")

    for name, doc in by_kind.get("StatefulSet", []):
        check(doc["spec"]["serviceName"] in services, f"{name}: serviceName is no Service")
        check(doc["spec"].get("replicas", 1) == 1, f"{name}: the server owns its store: one replica")

    for name, doc in by_kind.get("Job", []):
        spec = doc["spec"]
        check(spec.get("completionMode") == "Indexed", f"{name}: the completion index is the rank: Indexed")
        world = spec.get("completions")
        check(spec.get("parallelism") == world, f"{name}: every rank runs at once (parallelism = completions)")
        pod = pod_spec(doc)
        subdomain = pod.get("subdomain")
        if check(subdomain in services, f"{name}: subdomain {subdomain} is no Service"):
            headless = services[subdomain]
            check(headless["spec"].get("clusterIP") == "None", f"{name}: {subdomain} must be headless")
            check(headless["spec"]["selector"].items() <= pod_labels(doc).items(),
                  f"{name}: {subdomain} does not select the group's pods")
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            variables = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
            if not check(all(v in env for v in variables), f"{name}: one of {variables} is not set"):
                continue
            check(env["RANK"].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") ==
                  "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                  f"{name}: RANK is not the completion index")
            check(env["WORLD_SIZE"].get("value") == str(world), f"{name}: WORLD_SIZE is not the Job's completions")
            check(env["MASTER_ADDR"].get("value") == f"{doc['metadata']['name']}-0.{subdomain}",
                  f"{name}: MASTER_ADDR is not rank 0's pod")
            ports = {p["containerPort"] for p in container.get("ports", [])}
            check(int(env["MASTER_PORT"]["value"]) in ports, f"{name}: MASTER_PORT is no container port")
            check(container["resources"]["limits"].get("nvidia.com/gpu") == 1, f"{name}: one GPU per rank")
            args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
            ulysses, ring = int(args.get("--ulysses", 1)), int(args.get("--ring", 1))
            cfg = 2 if "--cfg-parallel" in container["args"] else 1
            check(ulysses * ring * cfg == world, f"{name}: ulysses × ring × cfg is not WORLD_SIZE {world}")
            host, _, port = args.get("--server", "").partition(":")
            if check(host in services, f"{name}: --server {host} is no Service"):
                check(int(port) in [p["port"] for p in services[host]["spec"]["ports"]],
                      f"{name}: --server port {port} is not served by {host}")

    for message in errors:
        print("deploy/k8s:", message)
    print(f"deploy/k8s: {len(objects)} objects, {len(errors)} problems")
    return 1 if errors else 0


# One mistake each, as (file, text in it, replacement): every one must be caught.
MISTAKES = [
    ("worker-group.yaml", 'name: WORLD_SIZE\n              value: "8"', 'name: WORLD_SIZE\n              value: "4"'),
    ("worker-group.yaml", "- --ulysses=4", "- --ulysses=2"),
    ("worker-group.yaml", "value: vidgen-worker-a-0.vidgen-worker-a", "value: vidgen-worker-a-1.vidgen-worker-a"),
    ("worker-group.yaml", "nvidia.com/gpu: 1", "nvidia.com/gpu: 2"),
    ("worker-group.yaml", "- --server=vidgen:50051", "- --server=vidgen:50052"),
    ("worker-group.yaml", "- --dtype=bf16", "- --data-type=bf16"),
    ("server.yaml", "secretName: vidgen-secrets", "secretName: vidgen-secret"),
    ("server.yaml", 'prometheus.io/port: "9090"', 'prometheus.io/port: "9091"'),
    ("server.yaml", "grpc:\n              port: 50051", "grpc:\n              port: 50052"),
    ("server.yaml", "serviceName: vidgen", "serviceName: vidgen-server"),
]


def self_test(deploy_dir, server_bin, worker_bin):
    import shutil
    import tempfile
    if main(deploy_dir, server_bin, worker_bin) != 0:
        return 1
    failed = 0
    for file, old, new in MISTAKES:
        with tempfile.TemporaryDirectory() as copy:
            for path in glob.glob(os.path.join(deploy_dir, "*.yaml")):
                shutil.copy(path, copy)
            with open(os.path.join(copy, file)) as f:
                text = f.read()
            if old not in text:
                print(f"self-test: '{old}' is not in {file}")
                failed += 1
                continue
            with open(os.path.join(copy, file), "w") as f:
                f.write(text.replace(old, new, 1))
            errors.clear()
            if main(copy, server_bin, worker_bin) == 0:
                print(f"self-test: {file} with '{new}' passed")
                failed += 1
    errors.clear()
    print(f"self-test: {len(MISTAKES) - failed} of {len(MISTAKES)} mistakes caught")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1] == "--self-test":
        sys.exit(self_test(*sys.argv[2:]))
    sys.exit(main(*sys.argv[1:]))
