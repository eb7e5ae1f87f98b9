#!/usr/bin/python3
"""Checks deploy/kubernetes/ offline: what the objects must have to work.

Usage: check_manifests.py KUBERNETES_DIR SHARDPS_BINARY [RENDERED_YAML]

RENDERED_YAML is `kubectl kustomize KUBERNETES_DIR` (tests/deploy/
CMakeLists.txt renders it); without it the resources kustomization.yaml
lists are read directly and its configMapGenerator is applied by hand
(names without kustomize's hash suffix). Every check failure is printed;
the exit status is 1 if any failed.
"""

import os
import re
import subprocess
import sys
import tempfile

import yaml

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def load_objects(kdir, rendered):
    if rendered:
        with open(rendered) as f:
            return [d for d in yaml.safe_load_all(f) if d]
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    objects = []
    for res in kust.get("resources", []):
        with open(os.path.join(kdir, res)) as f:
            objects += [d for d in yaml.safe_load_all(f) if d]
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for name in gen.get("files", []):
            with open(os.path.join(kdir, name)) as f:
                data[os.path.basename(name)] = f.read()
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": gen["name"]}, "data": data})
    return objects


def find(objects, kind, name=None):
    return [o for o in objects if o.get("kind") == kind and
            (name is None or o["metadata"]["name"] == name)]


def one(objects, kind, name=None):
    found = find(objects, kind, name)
    check(len(found) == 1, "want exactly one %s %s, found %d" %
          (kind, name or "", len(found)))
    return found[0] if found else None


def config_map(objects, ref):
    """The ConfigMap a volume names: exact, or kustomize's name-<hash>."""
    for o in find(objects, "ConfigMap"):
        name = o["metadata"]["name"]
        if name == ref or re.fullmatch(re.escape(ref) + r"-[a-z0-9]{10}",
                                       name) or ref.startswith(name + "-"):
            return o
    return None


def flag(command, name):
    """The value of --name=V or --name V in a command list (None if absent)."""
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v
                                  for k, v in selector.items())


def check_pod(objects, owner, spec):
    """What every pod of ours needs: its volumes resolve, secrets are
    private (no fsGroup, defaultMode without group/other bits), every
    container has resource requests."""
    if check(spec.get("securityContext", {}).get("fsGroup") is None,
             owner + ": fsGroup makes the Secret's key files group-readable,"
             " which shardps refuses"):
        pass
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            ref = vol["configMap"]["name"]
            check(config_map(objects, ref) is not None,
                  "%s: volume %s names ConfigMap %s, which is not defined" %
                  (owner, vol["name"], ref))
        if "secret" in vol:
            ref = vol["secret"]["secretName"]
            check(len(find(objects, "Secret", ref)) == 1,
                  "%s: volume %s names Secret %s, which is not defined" %
                  (owner, vol["name"], ref))
            check(vol["secret"].get("defaultMode", 0o644) & 0o077 == 0,
                  "%s: Secret volume %s needs defaultMode 0400 (shardps "
                  "refuses a secret key readable by group or others)" %
                  (owner, vol["name"]))
    for c in spec["containers"]:
        requests = c.get("resources", {}).get("requests", {})
        check("memory" in requests and "cpu" in requests,
              "%s: container %s needs cpu and memory requests" %
              (owner, c["name"]))
        check("memory" in c.get("resources", {}).get("limits", {}),
              "%s: container %s needs a memory limit (tmpfs pages count "
              "against it)" % (owner, c["name"]))


def probe_is_health(container, which):
    probe = container.get(which)
    return (probe is not None and
            probe.get("exec", {}).get("command", [])[:2] == ["shardps",
                                                             "health"])


def mounts(container, path):
    return [m for m in container.get("volumeMounts", [])
            if m["mountPath"] == path]


def volume(spec, name):
    return next((v for v in spec.get("volumes", []) if v["name"] == name),
                None)


def main():
    kdir, binary = sys.argv[1], sys.argv[2]
    rendered = sys.argv[3] if len(sys.argv) > 3 else None
    objects = load_objects(kdir, rendered)

    svc = one(objects, "Service")
    sts = one(objects, "StatefulSet")
    pdb = one(objects, "PodDisruptionBudget")
    ds = one(objects, "DaemonSet")
    job = one(objects, "Job")
    if None in (svc, sts, pdb, ds, job):
        return report()

    # The headless Service and the StatefulSet behind it.
    check(svc["spec"].get("clusterIP") == "None",
          "Service %s must be headless (clusterIP: None)" %
          svc["metadata"]["name"])
    check(sts["spec"]["serviceName"] == svc["metadata"]["name"],
          "StatefulSet serviceName %s is not the Service %s" %
          (sts["spec"]["serviceName"], svc["metadata"]["name"]))
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    check(matches(sts["spec"]["selector"]["matchLabels"], labels),
          "StatefulSet selector does not match its pods")
    check(matches(svc["spec"]["selector"], labels),
          "Service selector does not match the shard pods")
    check(matches(pdb["spec"]["selector"]["matchLabels"], labels),
          "PodDisruptionBudget selector does not match the shard pods")
    check(not matches(pdb["spec"]["selector"]["matchLabels"],
                      ds["spec"]["template"]["metadata"]["labels"]),
          "PodDisruptionBudget must not count the replica pods as shards")
    svc_ports = [p["port"] for p in svc["spec"]["ports"]]
    check(len(svc_ports) == 1, "Service must have one port")
    port = svc_ports[0]

    shard = pod["spec"]["containers"][0]
    command = shard["command"] + shard.get("args", [])
    check(command[:2] == ["shardps", "serve"], "shard container runs %s" %
          command[:2])
    check("--shard-from-hostname" in command,
          "shard pods must take their index from the pod ordinal "
          "(--shard-from-hostname)")
    listen = flag(command, "--listen") or ""
    check(listen == "tcp://0.0.0.0:%d" % port,
          "serve --listen %s is not tcp://0.0.0.0:%d" % (listen, port))
    check(flag(command, "--curve-secret-key") is not None,
          "a pod listening on 0.0.0.0 needs CURVE (--curve-secret-key)")
    check([p["containerPort"] for p in shard.get("ports", [])] == [port],
          "containerPort must be the Service's port %d" % port)
    replicas = sts["spec"]["replicas"]
    check(flag(command, "--shards") == str(replicas),
          "serve --shards %s differs from the StatefulSet's replicas %d" %
          (flag(command, "--shards"), replicas))
    check(pod["spec"].get("terminationGracePeriodSeconds", 30) >= 60,
          "terminationGracePeriodSeconds must leave time for the final "
          "checkpoint (>= 60)")
    for which in ("readinessProbe", "livenessProbe"):
        check(probe_is_health(shard, which),
              "shard %s must exec `shardps health`" % which)
        probe = shard.get(which, {}).get("exec", {}).get("command", [])
        check(flag(probe, "--endpoint") == "tcp://127.0.0.1:%d" % port,
              "shard %s must probe its own port %d" % (which, port))
    shm = mounts(shard, "/dev/shm")
    if check(len(shm) == 1, "shard container must mount a volume at "
             "/dev/shm"):
        vol = volume(pod["spec"], shm[0]["name"]) or {}
        empty = vol.get("emptyDir", {})
        check(empty.get("medium") == "Memory" and "sizeLimit" in empty,
              "/dev/shm must be an emptyDir {medium: Memory, sizeLimit}")
    check((flag(command, "--storage") or "").startswith("/dev/shm/"),
          "serve --storage must be under the Memory emptyDir at /dev/shm")
    check_pod(objects, "StatefulSet", pod["spec"])

    # The model spec and the cluster file the pods read.
    spec_cm = config_map(objects, "shardps-model")
    cluster_cm = config_map(objects, "shardps-cluster")
    if check(spec_cm is not None and cluster_cm is not None,
             "ConfigMaps shardps-model and shardps-cluster must exist"):
        cluster = cluster_cm["data"]["cluster.toml"]
        pattern = re.search(r'^endpoint_pattern\s*=\s*"([^"]*)"', cluster,
                            re.M)
        shards = re.search(r"^shards\s*=\s*(\d+)", cluster, re.M)
        model = re.search(r'^model\s*=\s*"([^"]*)"', cluster, re.M)
        want = "tcp://%s-{i}.%s:%d" % (sts["metadata"]["name"],
                                       svc["metadata"]["name"], port)
        check(pattern is not None and pattern.group(1) == want,
              "cluster.toml endpoint_pattern must be %s (pod-<i>.service:"
              "port)" % want)
        check(shards is not None and int(shards.group(1)) == replicas,
              "cluster.toml shards must equal the StatefulSet's replicas "
              "%d" % replicas)
        spec_model = re.search(r'^name\s*=\s*"([^"]*)"',
                               spec_cm["data"]["model.toml"], re.M)
        check(model and spec_model and
              model.group(1) == spec_model.group(1),
              "cluster.toml's model must be the spec's [model] name")
        check_with_shardps(binary, cluster, spec_cm["data"]["model.toml"],
                           replicas)

    # Host replicas: a DaemonSet whose copies the trainers on its node see.
    rpod = ds["spec"]["template"]["spec"]
    replica = rpod["containers"][0]
    check(replica["command"][:2] == ["shardps", "replica"],
          "DaemonSet must run `shardps replica`")
    for which in ("readinessProbe", "livenessProbe"):
        check(probe_is_health(replica, which),
              "replica %s must exec `shardps health`" % which)
    storage = flag(replica["command"], "--storage") or ""
    rmount = [m for m in replica.get("volumeMounts", [])
              if storage.startswith(m["mountPath"])]
    host_path = None
    if check(len(rmount) == 1, "replica --storage %s must be a mounted "
             "volume" % storage):
        vol = volume(rpod, rmount[0]["name"]) or {}
        host_path = vol.get("hostPath", {}).get("path")
        check(host_path is not None and host_path.startswith("/dev/shm/"),
              "replica storage must be a hostPath on the node's /dev/shm "
              "(trainer pods map the same files)")
    check_pod(objects, "DaemonSet", rpod)

    # Trainers: an Indexed Job that mounts the replica's copies.
    jspec = job["spec"]
    check(jspec.get("completionMode") == "Indexed",
          "trainer Job must use completionMode: Indexed "
          "(JOB_COMPLETION_INDEX is the worker index)")
    check(jspec.get("parallelism", 0) >= 1 and
          jspec.get("parallelism") == jspec.get("completions"),
          "trainer Job needs parallelism == completions (one pod per "
          "worker)")
    tpod = jspec["template"]["spec"]
    tpaths = [(volume(tpod, m["name"]) or {}).get("hostPath", {}).get("path")
              for m in tpod["containers"][0].get("volumeMounts", [])]
    check(host_path in tpaths,
          "trainer pods must mount the replica's hostPath %s" % host_path)
    check_pod(objects, "Job", tpod)
    return report()


def check_with_shardps(binary, cluster, spec, replicas):
    """The cluster file parses (health fails only because no shard is
    reachable: exit 1, one line per shard, not 2) and the spec loads."""
    with tempfile.TemporaryDirectory() as tmp:
        cpath = os.path.join(tmp, "cluster.toml")
        spath = os.path.join(tmp, "model.toml")
        with open(cpath, "w") as f:
            f.write(cluster)
        with open(spath, "w") as f:
            f.write(spec)
        run = subprocess.run([binary, "health", "--cluster", cpath,
                              "--timeout", "100ms"], capture_output=True,
                             text=True, timeout=60)
        lines = run.stderr.strip().splitlines()
        check(run.returncode == 1 and len(lines) == replicas and
              all("no answer within" in line for line in lines),
              "shardps health --cluster on cluster.toml: want exit 1 with "
              "%d unreachable shards, got %d: %s" %
              (replicas, run.returncode, run.stderr))
        out = os.path.join(tmp, "written.toml")
        run = subprocess.run([binary, "cluster", "--spec", spath, "--shards",
                              str(replicas), "--hosts", "127.0.0.1",
                              "--port", "7000", "-o", out],
                             capture_output=True, text=True, timeout=60)
        check(run.returncode == 0, "model.toml does not load: " + run.stderr)


def report():
    for f in failures:
        print("FAIL: " + f)
    print("%d check(s) failed" % len(failures) if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
