"""Semantic checks of Ferry's deployment files, run by deploy/validate/run.sh.

Each subcommand checks one area and exits non-zero with one line per problem:

    checks.py compose CONFIG_JSON SECRETS_DIR   docker-compose.yml (as `docker compose config` resolved it)
    checks.py dockerfile                        deploy/compose/Dockerfile against /.dockerignore and the workspace
    checks.py context DIR                       copy the build context (what /.dockerignore lets through) to DIR
    checks.py apt-packages                      the Debian packages the Dockerfile installs, one a line
    checks.py k8s                               deploy/k8s/*.yaml: wiring between objects, pod hardening
    checks.py configs FERRY_BIN                 every TOML (compose, k8s, systemd) through `ferry config check`
    checks.py docs FERRY_BIN                    docs/CONFIG.md documents every setting with its real default

Parsers do the structural work (docker compose, kubernetes-validate, hadolint,
systemd-analyze); these checks cover what ties the files together, which no schema sees:
a *_file setting without the secret mounted at that path, a workspace crate the image
build does not copy, a setting added to the code but not to docs/CONFIG.md.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy/compose"
K8S = REPO / "deploy/k8s"
SYSTEMD = REPO / "deploy/systemd"

# Settings api, worker and monitor must agree on (each reads them from its own file).
SHARED_KEYS = [
    "storage.staging_dir",
    "storage.replication_factor",
    "storage.node_reserve_bytes",
    "api.heartbeat_stale_secs",
]
SECRET_KEYS = {"database.url", "broker.url", "auth.jwt_secret", "signing.secret"}
FILE_KEYS = {k + "_file" for k in SECRET_KEYS}
FILE_ENV = {k + "_file": "FERRY_" + k.replace(".", "__").upper() + "_FILE" for k in SECRET_KEYS}
PROCESSES = ["api", "worker", "monitor", "node"]

problems = []


def problem(msg):
    problems.append(msg)


def finish(what):
    for p in problems:
        print(f"  {what}: {p}")
    return 1 if problems else 0


def flatten(table, prefix=""):
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- compose -------------------------------------------------------------------------------


def check_compose(config_json, secrets_dir):
    cfg = json.loads(Path(config_json).read_text())
    services = cfg.get("services", {})
    wanted = ["postgres", "rabbitmq", "bootstrap", "api", "proxy", "worker", "monitor", "node1", "node2", "node3"]
    for name in wanted:
        if name not in services:
            problem(f"service {name} is missing")
    if problems:
        return

    if "management" not in services["rabbitmq"].get("image", ""):
        problem("rabbitmq must use an image with the management plugin")
    if not any(p.get("target") == 15672 for p in services["rabbitmq"].get("ports", [])):
        problem("rabbitmq's management UI (15672) is not published")
    if int(services["api"].get("deploy", {}).get("replicas", 1)) < 2:
        problem("api must run at least 2 replicas")
    for name in ("worker", "api"):
        svc = services[name]
        if svc.get("container_name") or svc.get("ports"):
            problem(f"{name} has a container_name or host ports, so it cannot be scaled")
    if not services["proxy"].get("ports"):
        problem("the proxy publishes no port")

    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (COMPOSE / "Dockerfile").read_text(), re.M | re.I))
    configs = {name: c.get("file") for name, c in cfg.get("configs", {}).items()}
    ferry = [n for n, s in services.items() if str(s.get("image", "")).startswith("ferry-")]
    for name in ferry:
        svc = services[name]
        if not svc.get("read_only"):
            problem(f"{name}: read_only root filesystem expected")
        if "ALL" not in svc.get("cap_drop", []):
            problem(f"{name}: cap_drop ALL expected")
        if not any(o.startswith("no-new-privileges") for o in svc.get("security_opt", [])):
            problem(f"{name}: security_opt no-new-privileges expected")
        build = svc.get("build") or {}
        if build.get("dockerfile") != "deploy/compose/Dockerfile" or Path(build.get("context", "")) != REPO:
            problem(f"{name}: must be built from deploy/compose/Dockerfile with the repository as context")
        if build.get("target") not in stages:
            problem(f"{name}: build target {build.get('target')!r} is not a stage of the Dockerfile")
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|URL$|KEY$", key) and not key.endswith("_FILE"):
                problem(f"{name}: {key} is set in the environment; secrets come from compose secrets")
        targets = {s["target"] if s["target"].startswith("/") else "/run/secrets/" + s["target"]
                   for s in svc.get("secrets", [])}
        mounts = {c["target"]: configs.get(c["source"]) for c in svc.get("configs", [])}
        toml_path = next((f for t, f in mounts.items() if t.startswith("/etc/ferry/") and t.endswith(".toml")), None)
        if toml_path is None:
            problem(f"{name}: no /etc/ferry/*.toml config mounted")
            continue
        settings = flatten(tomllib.loads(Path(toml_path).read_text()))
        for key, value in settings.items():
            if key in FILE_KEYS and value not in targets:
                problem(f"{name}: {key} = {value!r} but no secret is mounted there")
        if Path(toml_path).name == "worker.toml":
            for key in ("worker.ssh_key", "worker.ssh_known_hosts"):
                if settings.get(key) not in targets:
                    problem(f"{name}: {key} = {settings.get(key)!r} is not a mounted secret")
        volumes = {v.get("target"): v.get("source") for v in svc.get("volumes", [])}
        if name in ("api", "worker"):
            if volumes.get(settings.get("storage.staging_dir")) != "staging":
                problem(f"{name}: the shared staging volume is not mounted at storage.staging_dir")

    node_volumes, host_keys = set(), set()
    for name in ("node1", "node2", "node3"):
        svc = services[name]
        volumes = {v.get("target"): v.get("source") for v in svc.get("volumes", [])}
        node_volumes.add(volumes.get("/srv/ferry"))
        secrets_by_target = {s.get("target"): s["source"] for s in svc.get("secrets", [])}
        host_keys.add(secrets_by_target.get("/etc/ferry/host-keys/ssh_host_ed25519_key"))
        if "/etc/ferry/ssh/authorized_keys" not in secrets_by_target:
            problem(f"{name}: the workers' authorized_keys is not mounted")
        if svc.get("hostname") != name:
            problem(f"{name}: hostname must be {name} (the workers' known_hosts names it)")
    if None in node_volumes or len(node_volumes) != 3:
        problem("each node needs its own volume at /srv/ferry")
    if None in host_keys or len(host_keys) != 3:
        problem("each node needs its own host key secret")

    for name, secret in cfg.get("secrets", {}).items():
        path = secret.get("file")
        if not path or not Path(path).is_file():
            problem(f"secret {name}: {path} was not made by gen-secrets.sh")
        elif Path(path).stat().st_size == 0:
            problem(f"secret {name}: {path} is empty")
    known_hosts = Path(secrets_dir, "known_hosts").read_text()
    for name in ("node1", "node2", "node3"):
        if f"[{name}]:2222 " not in known_hosts:
            problem(f"known_hosts does not pin {name}'s host key on port 2222")
    if "command=\"/usr/lib/ferry/ferry-node-ssh-command /srv/ferry\"" not in Path(secrets_dir, "authorized_keys").read_text():
        problem("authorized_keys does not force ferry-node-ssh-command")


# --- Dockerfile ----------------------------------------------------------------------------


def dockerignore_patterns():
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip("/"))
        patterns.append((negate, pattern))
    return patterns


def pattern_matches(pattern, path):
    """Docker's matching (moby/patternmatcher): filepath.Match plus `**`, applied to the
    path and to each of its parent directories."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
            if pattern.startswith("/", i):
                regex = regex[:-2] + "(.*/)?"
                i += 1
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


def in_build_context(path, patterns):
    included = True
    for negate, pattern in patterns:
        if pattern_matches(pattern, path):
            included = negate
    return included


def check_dockerfile():
    parser = DockerfileParser(path=str(COMPOSE / "Dockerfile"))
    stages, current = {}, None
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            m = re.search(r"\bAS\s+(\S+)", ins["value"], re.I)
            current = m.group(1) if m else f"stage{len(stages)}"
            stages[current] = []
        elif current:
            stages[current].append(ins)
    for target in ("build", "api", "worker", "monitor", "node"):
        if target not in stages:
            problem(f"stage {target} is missing")
    if problems:
        return

    build_runs = " ".join(i["value"] for i in stages["build"] if i["instruction"] == "RUN")
    if not re.search(r"cargo build\b[^&;]*--locked", build_runs):
        problem("the build stage must run `cargo build --locked`")
    if "--release" not in build_runs:
        problem("the build stage must build --release")

    patterns = dockerignore_patterns()
    copied = set()
    for stage, instructions in stages.items():
        for ins in instructions:
            if ins["instruction"] not in ("COPY", "ADD"):
                continue
            words = ins["value"].split()
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for src in sources:
                src = os.path.normpath(src)
                copied.add(src)
                if not (REPO / src).exists():
                    problem(f"{stage}: COPY source {src} does not exist")
                elif not in_build_context(src, patterns):
                    problem(f"{stage}: COPY source {src} is excluded by .dockerignore")
                if re.search(r"secret|id_ed25519|host_key|\.pem$|\.key$", src):
                    problem(f"{stage}: {src} looks like a secret baked into the image")
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    for member in members:
        # A member inside a copied folder (shared/store under `COPY shared shared`) is copied.
        if not any(member == c or member.startswith(c + "/") for c in copied):
            problem(f"workspace member {member} is not copied into the build stage")
    for needed in ("Cargo.lock", "Cargo.toml"):
        if needed not in copied:
            problem(f"{needed} is not copied into the build stage")
    # Things that must never reach the builder.
    for path in (".git", ".state", "target", "deploy/compose/secrets", "deploy/docs/node_modules"):
        if in_build_context(path, patterns):
            problem(f".dockerignore lets {path} into the build context")

    def stage_text(name, seen=()):
        """All instructions of a stage and the stages it is built FROM."""
        text = " ".join(f"{i['instruction']} {i['value']}" for i in stages[name])
        base = next((i for i in parser.structure if i["instruction"] == "FROM"
                     and re.search(rf"\bAS\s+{re.escape(name)}\b", i["value"], re.I)), None)
        parent = base["value"].split()[0] if base else ""
        if parent in stages and parent not in seen:
            text = stage_text(parent, seen + (name,)) + " " + text
        return text

    wants = {
        "api": ["ferry-api", "ca-certificates", "redoc.standalone.js", "swagger-ui-bundle.js", "uppy.min.js"],
        "worker": ["ferry-worker", "rsync", "openssh-client", "ca-certificates"],
        "monitor": ["ferry-monitor", "ca-certificates"],
        "node": ["ferry-node", "openssh-server", "rsync", "ferry-node-ssh-command", "ca-certificates"],
    }
    for target, needles in wants.items():
        text = stage_text(target)
        for needle in needles:
            if needle not in text:
                problem(f"target {target}: {needle} is missing")
        users = [i["value"].strip() for i in stages[target] if i["instruction"] == "USER"]
        if not users or users[-1].split(":")[0] in ("0", "root"):
            problem(f"target {target} must end as a non-root user")
        elif not users[-1].split(":")[0].isdigit():
            problem(f"target {target}: USER must be numeric (runAsNonRoot checks it)")
        if not any(i["instruction"] == "ENTRYPOINT" for i in stages[target]):
            problem(f"target {target} has no ENTRYPOINT")
        for i in stages[target]:
            if i["instruction"] == "ENV" and re.search(r"SECRET|PASSWORD|_URL=\S*@", i["value"]):
                problem(f"target {target}: ENV {i['value']} bakes a secret into the image")


def copy_context(dest):
    """The files `docker build .` would send, copied to `dest` (so the build stage's
    inputs can be checked without Docker)."""
    patterns = dockerignore_patterns()
    negations = [p for negate, p in patterns if negate]
    for top, dirs, files in os.walk(REPO):
        rel_top = os.path.relpath(top, REPO)
        rel_top = "" if rel_top == "." else rel_top + "/"
        keep = []
        for d in dirs:
            rel = rel_top + d
            if in_build_context(rel, patterns) or any(n.startswith(rel + "/") for n in negations):
                keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = rel_top + f
            if in_build_context(rel, patterns):
                target = Path(dest, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, target)


def apt_packages():
    parser = DockerfileParser(path=str(COMPOSE / "Dockerfile"))
    for ins in parser.structure:
        if ins["instruction"] != "RUN":
            continue
        for m in re.finditer(r"apt-get install ([^&;|]*)", ins["value"]):
            for word in m.group(1).split():
                if not word.startswith("-"):
                    print(word)


# --- Kubernetes ----------------------------------------------------------------------------


def check_k8s():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization.get("resources", []):
        if not (K8S / resource).is_file():
            problem(f"kustomization.yaml lists {resource}, which does not exist")
    image_names = {i["name"] for i in kustomization.get("images", [])}

    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_docs(path):
            objects.append((path.name, doc))
    by_kind = {}
    for fname, doc in objects:
        by_kind.setdefault(doc["kind"], []).append(doc)
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != "ferry":
            problem(f"{fname}: {doc['kind']}/{doc['metadata']['name']} is not in namespace ferry")

    secrets_keys = {s["metadata"]["name"]: set((s.get("stringData") or {}) | (s.get("data") or {}))
                    for s in by_kind.get("Secret", [])}
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    workloads = {o["metadata"]["name"]: o for k in ("Deployment", "StatefulSet", "Job") for o in by_kind.get(k, [])}

    def workload(name, kind):
        obj = workloads.get(name)
        if not obj or obj["kind"] != kind:
            problem(f"{kind} {name} is missing")
            return None
        return obj

    api = workload("ferry-api", "Deployment")
    worker = workload("ferry-worker", "Deployment")
    monitor = workload("ferry-monitor", "Deployment")
    nodes = workload("ferry-node", "StatefulSet")
    if problems:
        return
    if api["spec"].get("replicas", 1) < 2:
        problem("ferry-api should run at least 2 replicas")
    probe = api["spec"]["template"]["spec"]["containers"][0].get("readinessProbe", {})
    if probe.get("httpGet", {}).get("path") != "/readyz":
        problem("ferry-api's readiness probe must be GET /readyz")
    if monitor["spec"].get("replicas") != 1:
        problem("ferry-monitor must run exactly 1 replica")
    claims = [c["metadata"]["name"] for c in nodes["spec"].get("volumeClaimTemplates", [])]
    for container in nodes["spec"]["template"]["spec"]["containers"]:
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        if mounts.get("/srv/ferry") not in claims:
            problem(f"ferry-node/{container['name']}: /srv/ferry is not the pod's own volume claim")

    pod_labels = {name: o["spec"]["template"]["metadata"]["labels"] for name, o in workloads.items()}

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    for name in ("ferry-api", "ferry-worker", "ferry-node"):
        if not any(selects(p["spec"]["selector"]["matchLabels"], pod_labels[name])
                   for p in by_kind.get("PodDisruptionBudget", [])):
            problem(f"no PodDisruptionBudget covers {name}")
    for svc in by_kind.get("Service", []):
        selector = svc["spec"].get("selector", {})
        if "statefulset.kubernetes.io/pod-name" in selector:
            continue
        if not any(selects(selector, labels) for labels in pod_labels.values()):
            problem(f"Service {svc['metadata']['name']} selects no pods")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if hpa["spec"]["scaleTargetRef"]["name"] not in workloads:
            problem(f"HPA {hpa['metadata']['name']} scales a workload that does not exist")

    for name, obj in workloads.items():
        spec = obj["spec"]["template"]["spec"]
        ctx = spec.get("securityContext", {})
        if not ctx.get("runAsNonRoot") or ctx.get("runAsUser") != 10001:
            problem(f"{name}: pods must run as non-root uid 10001")
        if spec.get("automountServiceAccountToken") is not False:
            problem(f"{name}: automountServiceAccountToken: false expected (Ferry never talks to the API server)")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for claim in obj["spec"].get("volumeClaimTemplates", []):
            volumes[claim["metadata"]["name"]] = {"volumeClaimTemplate": claim}
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            image = container["image"].split(":")[0]
            if image not in image_names:
                problem(f"{where}: image {image} is not in kustomization.yaml's images")
            sc = container.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem") \
                    or "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problem(f"{where}: needs allowPrivilegeEscalation false, readOnlyRootFilesystem, drop ALL")
            provided = {}  # path in the container -> (secret name, key)
            toml = None
            for mount in container.get("volumeMounts", []):
                vol = volumes.get(mount["name"])
                if vol is None:
                    problem(f"{where}: mounts undefined volume {mount['name']}")
                    continue
                if "secret" in vol:
                    sname = vol["secret"]["secretName"]
                    if sname not in secrets_keys:
                        problem(f"{where}: Secret {sname} is not in secrets.example.yaml")
                        continue
                    items = vol["secret"].get("items") or [{"key": k, "path": k} for k in secrets_keys[sname]]
                    for item in items:
                        if item["key"] not in secrets_keys[sname]:
                            problem(f"{where}: Secret {sname} has no key {item['key']}")
                        provided[mount["mountPath"].rstrip("/") + "/" + item["path"]] = (sname, item["key"])
                if "configMap" in vol:
                    cname = vol["configMap"]["name"]
                    data = configmaps.get(cname)
                    if data is None:
                        problem(f"{where}: ConfigMap {cname} does not exist")
                    elif mount.get("subPath"):
                        if mount["subPath"] not in data:
                            problem(f"{where}: ConfigMap {cname} has no {mount['subPath']}")
                        elif mount["mountPath"].endswith(".toml"):
                            toml = flatten(tomllib.loads(data[mount["subPath"]]))
                if "persistentVolumeClaim" in vol:
                    claim = vol["persistentVolumeClaim"]["claimName"]
                    if not any(p["metadata"]["name"] == claim for p in by_kind.get("PersistentVolumeClaim", [])):
                        problem(f"{where}: PersistentVolumeClaim {claim} does not exist")
            args = container.get("args") or container.get("command") or []
            if "--config" in args and toml is None:
                problem(f"{where}: --config {args[args.index('--config') + 1]} is not mounted from the ConfigMap")
            if toml is None:
                continue
            for key, value in toml.items():
                if key in FILE_KEYS and value not in provided:
                    problem(f"{where}: {key} = {value!r} is not a mounted secret key")
            if container["name"] == "worker":
                for key in ("worker.ssh_key", "worker.ssh_known_hosts"):
                    if toml.get(key) not in provided:
                        problem(f"{where}: {key} = {toml.get(key)!r} is not a mounted secret key")
            if container["name"] in ("api", "worker"):
                mounts = {m["mountPath"]: volumes.get(m["name"], {}) for m in container["volumeMounts"]}
                pvc = mounts.get(toml.get("storage.staging_dir"), {}).get("persistentVolumeClaim")
                if not pvc:
                    problem(f"{where}: the staging volume is not mounted at storage.staging_dir")
    pvc = next((p for p in by_kind.get("PersistentVolumeClaim", []) if p["metadata"]["name"] == "ferry-staging"), None)
    if not pvc or "ReadWriteMany" not in pvc["spec"].get("accessModes", []):
        problem("ferry-staging must be a ReadWriteMany claim (shared by every API and worker pod)")


# --- configs through the real loader ---------------------------------------------------------


def run_config_check(ferry, toml_text, env, workdir, role="cli"):
    path = Path(workdir, f"cfg-{secrets.token_hex(4)}.toml")
    path.write_text(toml_text)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_BACKTRACE": "0", "NO_COLOR": "1"}
    result = subprocess.run([ferry, "config", "check", "--for", role, "--config", str(path)], env={**base, **env},
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        return None, " | ".join(lines[-3:])
    return flatten(tomllib.loads(result.stdout)), None


def secret_file(workdir, name):
    path = Path(workdir, f"secret-{name}")
    if not path.exists():
        path.write_text(secrets.token_hex(24) + "\n")
    return str(path)


def check_one_config(ferry, label, toml_text, env, workdir, role):
    """Loads `toml_text` with the real binary as `role` (api, worker, monitor, node): it
    must be valid in its own mode for that program (unknown keys are errors), and every
    setting it names must come out as written."""
    settings = flatten(tomllib.loads(toml_text))
    env = dict(env)
    for key in FILE_KEYS & settings.keys():
        env.setdefault(FILE_ENV[key], secret_file(workdir, key.split(".")[0]))
    effective, error = run_config_check(ferry, toml_text, env, workdir, role)
    if error:
        problem(f"{label}: rejected by ferry config check: {error}")
        return None
    for key, value in settings.items():
        if key in FILE_KEYS or key in SECRET_KEYS:
            continue
        if key not in effective:
            problem(f"{label}: {key} is not a Ferry setting (typo?)")
        elif effective[key] != value:
            problem(f"{label}: {key} = {value!r} came out as {effective[key]!r} (overridden?)")
    return effective


def check_shared(label, effective_by_process):
    present = {p: e for p, e in effective_by_process.items() if e is not None and p in ("api", "worker", "monitor")}
    for key in SHARED_KEYS:
        values = {p: e.get(key) for p, e in present.items()}
        if len(set(map(repr, values.values()))) > 1:
            problem(f"{label}: {key} differs between processes: {values}")


def unit_environment(unit_text, workdir):
    """The FERRY_* variables a unit sets, with %d (credentials), %t and %i filled in and a
    file behind every LoadCredential."""
    creds = Path(workdir, "credentials")
    creds.mkdir(exist_ok=True)
    for name in re.findall(r"^LoadCredential=([^:\s]+):", unit_text, re.M):
        Path(creds, name).write_text(secrets.token_hex(24) + "\n")
    env = {}
    for assignment in re.findall(r"^Environment=(\S+)", unit_text, re.M):
        key, _, value = assignment.partition("=")
        env[key] = value.replace("%d", str(creds)).replace("%t", "/run").replace("%i", "9101")
    for key, value in env.items():
        if key.endswith("_FILE") and not Path(value).exists():
            problem(f"{key}={value}: no LoadCredential provides it")
    return env


def check_configs(ferry):
    with tempfile.TemporaryDirectory(prefix="ferry-validate-") as workdir:
        # compose: config/*.toml, environment as compose sets it.
        effective = {}
        for process in PROCESSES:
            path = COMPOSE / "config" / f"{process}.toml"
            effective[process] = check_one_config(ferry, f"compose/{path.name}", path.read_text(), {}, workdir, process)
        check_shared("compose", effective)

        # Kubernetes: the ConfigMap's files.
        cm = next(d for d in load_yaml_docs(K8S / "configmap.yaml") if d["kind"] == "ConfigMap")
        effective = {}
        for process in PROCESSES:
            text = cm["data"].get(f"{process}.toml")
            if text is None:
                problem(f"k8s ConfigMap has no {process}.toml")
                continue
            effective[process] = check_one_config(ferry, f"k8s/{process}.toml", text, {}, workdir, process)
        check_shared("k8s", effective)

        # systemd: each unit's environment and credentials on top of its TOML.
        units = {"api": "ferry-api.service", "worker": "ferry-worker@.service",
                 "monitor": "ferry-monitor.service", "node": "ferry-node.service"}
        effective = {}
        for process, unit in units.items():
            unit_text = (SYSTEMD / unit).read_text()
            m = re.search(r"--config\s+/etc/ferry/(\S+\.toml)", unit_text)
            if not m or not (SYSTEMD / "ferry" / m.group(1)).is_file():
                problem(f"systemd/{unit}: its --config file is not in deploy/systemd/ferry/")
                continue
            env = unit_environment(unit_text, workdir)
            text = (SYSTEMD / "ferry" / m.group(1)).read_text()
            effective[process] = check_one_config(ferry, f"systemd/{unit}+{m.group(1)}", text, env, workdir, process)
        check_shared("systemd", effective)


# --- docs/CONFIG.md ----------------------------------------------------------------------------


def check_docs(ferry):
    with tempfile.TemporaryDirectory(prefix="ferry-validate-") as workdir:
        env = {var: secret_file(workdir, key) for key, var in FILE_ENV.items()}
        with_files, error = run_config_check(ferry, "", env, workdir)
        defaults, error2 = run_config_check(ferry, "", {}, workdir)
    if error or error2:
        problem(f"ferry config check failed: {error or error2}")
        return
    settings = set(with_files)
    doc = (REPO / "docs/CONFIG.md").read_text()
    documented = {}
    for m in re.finditer(r"^\|\s*`([a-z_]+(?:\.[a-z_]+)?)`\s*\|\s*([^|]*?)\s*\|", doc, re.M):
        documented[m.group(1)] = m.group(2)
    for key in sorted(settings - documented.keys()):
        problem(f"setting {key} is not documented in docs/CONFIG.md")
    for key in sorted(documented.keys() - settings):
        problem(f"docs/CONFIG.md documents {key}, which is not a setting")
    for key in sorted(settings & documented.keys()):
        if key in SECRET_KEYS or key in FILE_KEYS:
            continue
        cell = documented[key]
        m = re.fullmatch(r"`(.*)`", cell)
        if not m:
            problem(f"docs/CONFIG.md: default of {key} must be a TOML value in backticks, not {cell!r}")
            continue
        try:
            value = tomllib.loads("v = " + m.group(1))["v"]
        except tomllib.TOMLDecodeError:
            problem(f"docs/CONFIG.md: default of {key} ({m.group(1)}) is not a TOML value")
            continue
        if value != defaults.get(key):
            problem(f"docs/CONFIG.md: default of {key} is {value!r}, the code says {defaults.get(key)!r}")


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "compose" and len(argv) == 4:
        check_compose(argv[2], argv[3])
    elif command == "dockerfile":
        check_dockerfile()
    elif command == "context" and len(argv) == 3:
        copy_context(argv[2])
    elif command == "apt-packages":
        apt_packages()
    elif command == "k8s":
        check_k8s()
    elif command == "configs" and len(argv) == 3:
        check_configs(argv[2])
    elif command == "docs" and len(argv) == 3:
        check_docs(argv[2])
    else:
        print(__doc__)
        return 2
    return finish(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
