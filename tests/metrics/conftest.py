"""Helpers of the metrics tests: `shardps serve` shards and a `shardps
replica` with `--metrics-listen 0`, clients with `metrics_listen="0"`,
scraping and parsing /metrics, the exact families each serves, and a real
Prometheus server (Debian's `prometheus`) on loopback.

Run by ctest (test `metrics.pytest`, label `metrics`) with PYTHONPATH at the
built module and SHARDPS_BINARY at the built CLI; by hand:
    PYTHONPATH=build/python SHARDPS_BINARY=build/cli/shardps \
        /usr/bin/python3 -m pytest tests/metrics -q

Every process is started by pid and killed at teardown (also when a test
fails); every directory (segments, checkpoints, Prometheus' TSDB) lives in a
per-test directory that teardown removes.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

import shardps

PROMTOOL = os.environ.get("SHARDPS_PROMTOOL", "/usr/bin/promtool")
PROMETHEUS = os.environ.get("SHARDPS_PROMETHEUS", "/usr/bin/prometheus")


def binary():
    path = os.environ.get("SHARDPS_BINARY")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("SHARDPS_BINARY does not name the shardps CLI")
    return path


def require_tool(path, package="prometheus"):
    """Skips the test when a Prometheus tool is not installed."""
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed (Debian package `{package}`, "
                    "scripts/install-deps.sh installs it)")
    return path


def spec_text(model, tensors, *, block_floats=1024, consistency=""):
    """A model spec: sgd with lr 1, zero-initialised tensors {name: shape};
    `consistency` is the body of a [consistency] table."""
    lines = [
        "[model]", f'name = "{model}"', 'storage = "/dev/shm/shardps"',
        f"block_floats = {block_floats}", "",
        "[optimizer]", 'kind = "sgd"', "lr = 1.0", "",
    ]
    for name, shape in tensors.items():
        lines += ["[[tensor]]", f'name = "{name}"', f"shape = {list(shape)}",
                  'init = "zeros"', ""]
    if consistency:
        lines += ["[consistency]", consistency, ""]
    return "\n".join(lines)


def wait_for(what, condition, timeout=20.0, interval=0.05):
    """Polls condition() until it returns something truthy (returned) or
    the deadline passes (the test fails naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc, timeout=15):
    """SIGINT (a shard's clean stop), then SIGKILL; always reaps."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Shard:
    """One `shardps serve` process; stdout and stderr go to files in `dir`
    (a pipe nobody reads could fill and block the server)."""

    def __init__(self, binary, spec, index, shards, dir, args):
        self.index = index
        self.out = os.path.join(dir, f"shard-{index}.out")
        self.err = os.path.join(dir, f"shard-{index}.err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "serve", "--spec", spec, "--shard", str(index),
                 "--shards", str(shards), "--storage", dir,
                 "--metrics-listen", "0", *args],
                stdout=out, stderr=err)
        self.endpoint = None
        self.metrics_url = None

    def log(self):
        text = ""
        for path in (self.out, self.err):
            with open(path) as f:
                text += f.read()
        return text

    def poll_ready(self):
        """True once both stdout lines are there; raises if it died."""
        with open(self.out) as f:
            lines = f.read().splitlines()
        for line in lines:
            if line.startswith("listening on "):
                self.endpoint = line[len("listening on "):].strip()
            elif line.startswith("metrics on "):
                self.metrics_url = line[len("metrics on "):].strip()
        if self.endpoint and self.metrics_url:
            return True
        if self.proc.poll() is not None:
            raise RuntimeError(f"shard {self.index} exited with "
                               f"{self.proc.returncode}:\n{self.log()}")
        return False


class ShardCluster:
    """N `shardps serve` shards of one model in a fresh /dev/shm directory,
    with the cluster file a Client connects with."""

    def __init__(self, binary, spec, shards, args):
        self.dir = tempfile.mkdtemp(prefix="shardps-metrics.", dir="/dev/shm")
        self.shards = []
        try:
            self.spec = os.path.join(self.dir, "spec.toml")
            with open(self.spec, "w") as f:
                f.write(spec)
            self.model = re.search(r'^name = "([^"]+)"', spec,
                                   re.M).group(1)
            for i in range(shards):
                extra = [a.replace("{dir}", self.dir)
                         .replace("{shard}", str(i)) for a in args]
                self.shards.append(
                    Shard(binary, self.spec, i, shards, self.dir, extra))
            for shard in self.shards:
                wait_for(f"shard {shard.index} to print its endpoints",
                         shard.poll_ready)
            self.cluster_file = os.path.join(self.dir, "cluster.toml")
            with open(self.cluster_file, "w") as f:
                f.write(f'model = "{self.model}"\n')
                for shard in self.shards:
                    f.write(f'\n[[shard]]\nindex = {shard.index}\n'
                            f'endpoint = "{shard.endpoint}"\n')
        except BaseException:
            self.stop()
            raise

    @property
    def metrics_urls(self):
        return [s.metrics_url for s in self.shards]

    def targets(self):
        """host:port of each shard's metrics endpoint (Prometheus' form)."""
        return [urllib.parse.urlsplit(u).netloc for u in self.metrics_urls]

    def stop(self):
        # All signalled first: a shard with metrics takes a second or two
        # to stop (its HTTP server's threads), so they stop together.
        for shard in self.shards:
            if shard.proc.poll() is None:
                shard.proc.send_signal(signal.SIGINT)
        for shard in self.shards:
            stop_process(shard.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_shards():
    """start_shards(spec, shards=2, args=()) -> ShardCluster, every one
    stopped and its directory removed at teardown. `args` are extra
    `shardps serve` flags; "{dir}" in them is the cluster's directory,
    "{shard}" the shard's index.
    """
    path = binary()
    clusters = []

    def start(spec, shards=2, args=()):
        clusters.append(ShardCluster(path, spec, shards, args))
        return clusters[-1]

    yield start
    for c in clusters:
        c.stop()


class Replica:
    """One `shardps replica --all-shards --metrics-listen 0` of `cluster`
    (its copies under the cluster's directory); stdout and stderr go to
    files there. Ready once it printed its metrics URL and `replica
    ready` (every shard mirrored and subscribed)."""

    def __init__(self, binary, cluster):
        self.out = os.path.join(cluster.dir, "replica.out")
        self.err = os.path.join(cluster.dir, "replica.err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "replica", "--cluster", cluster.cluster_file,
                 "--spec", cluster.spec, "--storage",
                 os.path.join(cluster.dir, "replica"), "--all-shards",
                 "--metrics-listen", "0"],
                stdout=out, stderr=err)
        self.metrics_url = None
        try:
            wait_for("the replica to print `replica ready`", self.poll_ready)
        except BaseException:
            self.stop()
            raise

    def log(self):
        text = ""
        for path in (self.out, self.err):
            with open(path) as f:
                text += f.read()
        return text

    def poll_ready(self):
        with open(self.out) as f:
            lines = f.read().splitlines()
        # `metrics on URL` is the first line, before `replica ready`.
        if lines and lines[0].startswith("metrics on "):
            self.metrics_url = lines[0][len("metrics on "):].strip()
        if self.metrics_url and any(l.startswith("replica ready")
                                    for l in lines):
            return True
        if self.proc.poll() is not None:
            raise RuntimeError(f"replica exited with "
                               f"{self.proc.returncode}:\n{self.log()}")
        return False

    def target(self):
        return urllib.parse.urlsplit(self.metrics_url).netloc

    def stop(self):
        stop_process(self.proc)


@pytest.fixture
def start_replica():
    """start_replica(cluster) -> Replica, stopped at teardown (before the
    cluster: this fixture is requested after start_shards)."""
    path = binary()
    replicas = []

    def start(cluster):
        replicas.append(Replica(path, cluster))
        return replicas[-1]

    yield start
    for r in replicas:
        r.stop()


@pytest.fixture
def tmp_dir():
    d = tempfile.mkdtemp(prefix="shardps-metrics-test.")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def scrape(url, timeout=10.0):
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        assert reply.status == 200
        return reply.read().decode()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)'
                     r'(?:\s+\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """The samples of a text-format exposition: a list of
    (name, {label: value}, float). Raises on a line it cannot read."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"unparsable sample line: {line!r}")
        labels = {}
        body = m.group(2) or ""
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                raise ValueError(f"unparsable labels in: {line!r}")
            labels[lm.group(1)] = (lm.group(2).replace('\\"', '"')
                                   .replace("\\n", "\n")
                                   .replace("\\\\", "\\"))
            pos = lm.end()
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class Scrape:
    """One shard's parsed /metrics, queried by name and label subset."""

    def __init__(self, text):
        self.text = text
        self.samples = parse_metrics(text)

    def find(self, name, **labels):
        return [(l, v) for n, l, v in self.samples if n == name and
                all(l.get(k) == v for k, v in labels.items())]

    def value(self, name, default=None, **labels):
        """The one sample matching; `default` when none does (fails when
        `default` is None), fails when several do."""
        found = self.find(name, **labels)
        if not found:
            if default is None:
                pytest.fail(f"no sample {name}{labels} in:\n{self.text}")
            return default
        assert len(found) == 1, f"several samples {name}{labels}: {found}"
        return found[0][1]

    def names(self):
        return {n for n, _, _ in self.samples}


def free_port():
    """A loopback port that was free a moment ago (bind to 0 and close):
    whoever uses it must retry when another process took it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A Prometheus server on loopback scraping every second the targets
    of `jobs` ({job name: [host:port, ...]}; a plain list is the job
    "shardps"), its TSDB under `dir`. Killed by stop()."""

    def __init__(self, dir, jobs, attempts=5):
        if not isinstance(jobs, dict):
            jobs = {"shardps": jobs}
        self.dir = dir
        self.config = os.path.join(dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 900ms\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n")
            for job, targets in jobs.items():
                f.write(f"  - job_name: {job}\n"
                        "    static_configs:\n"
                        "      - targets: [" +
                        ", ".join(f"'{t}'" for t in targets) + "]\n")
        self.proc = None
        self.log_path = os.path.join(dir, "prometheus.log")
        for attempt in range(attempts):
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={self.config}",
                     f"--storage.tsdb.path={os.path.join(dir, 'tsdb')}",
                     f"--web.listen-address=127.0.0.1:{port}"],
                    stdout=log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            # Lost the port to another process (or some other start
            # failure): the log says which; try another port.
            stop_process(self.proc)
        raise RuntimeError(f"prometheus did not start after {attempts} "
                           f"tries:\n{self.log()}")

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready",
                                            timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        return False

    def api(self, path, **params):
        """GET /api/v1/<path>: the decoded JSON (also for a 4xx reply,
        whose body says what was wrong with the query)."""
        url = f"{self.url}/api/v1/{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def query(self, expr, at=None):
        """An instant query: the API's reply (status, data.result...)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)

    def vector(self, expr, at=None):
        """The instant vector of `expr` as a list of (labels, float);
        fails the test when the query does not succeed."""
        reply = self.query(expr, at)
        assert reply.get("status") == "success", (expr, reply)
        return [(r["metric"], float(r["value"][1]))
                for r in reply["data"]["result"]]

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture
def start_prometheus(tmp_dir):
    """start_prometheus(jobs) -> Prometheus (jobs as Prometheus takes
    them), stopped at teardown (its TSDB is in tmp_dir, which is removed
    after)."""
    require_tool(PROMETHEUS)
    servers = []

    def start(jobs):
        d = tempfile.mkdtemp(prefix="prometheus.", dir=tmp_dir)
        servers.append(Prometheus(d, jobs))
        return servers[-1]

    yield start
    for p in servers:
        p.stop()


# What `process_*` families every endpoint serves (prometheus-cpp's
# exposer also serves its own `exposer_*`, which no check here names).
PROCESS_FAMILIES = {
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
}

# Every family a shard serves with a bsp model, worker clocks, a hosted
# queue and a checkpoint taken, with its type. The promtool test checks a
# real shard serves exactly these (so this list cannot go stale).
SHARD_FAMILIES = {
    "shardps_shard_info": "gauge",
    "shardps_requests_total": "counter",
    "shardps_request_duration_seconds": "histogram",
    "shardps_received_bytes_total": "counter",
    "shardps_sent_bytes_total": "counter",
    "shardps_block_updates_total": "counter",
    "shardps_apply_duration_seconds": "histogram",
    "shardps_duplicate_pushes_total": "counter",
    "shardps_parked_requests": "gauge",
    "shardps_connected_clients": "gauge",
    "shardps_exactly_once_clients": "gauge",
    "shardps_refused_handshakes_total": "counter",
    "shardps_worker_clock": "gauge",
    "shardps_worker_staleness_clocks": "gauge",
    "shardps_worker_connected": "gauge",
    "shardps_applied_clock": "gauge",
    "shardps_replica_subscribers": "gauge",
    "shardps_replica_streamed_blocks_total": "counter",
    "shardps_replica_streamed_bytes_total": "counter",
    "shardps_segment_bytes": "gauge",
    "shardps_segment_resident_bytes": "gauge",
    "shardps_segment_blocks": "gauge",
    "shardps_checkpoints_total": "counter",
    "shardps_last_checkpoint_timestamp_seconds": "gauge",
    "shardps_last_checkpoint_age_seconds": "gauge",
    "shardps_last_checkpoint_duration_seconds": "gauge",
    "shardps_queue_depth_batches": "gauge",
    "shardps_queue_slots": "gauge",
    "shardps_queue_closed": "gauge",
    "shardps_queue_produced_batches_total": "counter",
    "shardps_queue_consumed_batches_total": "counter",
    "shardps_queue_producer_blocked_seconds_total": "counter",
    "shardps_queue_consumer_starved_seconds_total": "counter",
    "shardps_uptime_seconds": "gauge",
    **PROCESS_FAMILIES,
}

# Every family `shardps replica --metrics-listen` serves for a bsp model
# once it mirrors every shard and has heard from each (held_clock is bsp
# only; lag, behind and heard age need an open copy).
REPLICA_FAMILIES = {
    "shardps_replica_shard_local": "gauge",
    "shardps_replica_mirrored": "gauge",
    "shardps_replica_subscribed": "gauge",
    "shardps_replica_received_blocks_total": "counter",
    "shardps_replica_received_bytes_total": "counter",
    "shardps_replica_subscribes_total": "counter",
    "shardps_replica_held_clock": "gauge",
    "shardps_replica_lag_seconds": "gauge",
    "shardps_replica_behind_blocks": "gauge",
    "shardps_replica_heard_age_seconds": "gauge",
    **PROCESS_FAMILIES,
}

# Every family Client::MetricsText() holds; a client's metrics endpoint
# serves these and PROCESS_FAMILIES.
CLIENT_TEXT_FAMILIES = {
    "shardps_client_requests_total": "counter",
    "shardps_client_request_duration_seconds": "histogram",
    "shardps_client_sent_bytes_total": "counter",
    "shardps_client_received_bytes_total": "counter",
    "shardps_client_retries_total": "counter",
    "shardps_client_timeouts_total": "counter",
    "shardps_client_in_flight_requests": "gauge",
}
CLIENT_FAMILIES = {**CLIENT_TEXT_FAMILIES, **PROCESS_FAMILIES}

# What each kind of exposition in Deployment.scrapes serves, exactly.
FAMILIES_OF = {"shard": SHARD_FAMILIES, "replica": REPLICA_FAMILIES,
               "client": CLIENT_FAMILIES,
               "client metrics_text": CLIENT_TEXT_FAMILIES}

# The sample names a family of each type exposes.
_SAMPLE_SUFFIXES = {"counter": ("",), "gauge": ("",),
                    "histogram": ("_bucket", "_sum", "_count")}


def sample_names(families_of_kind):
    """The sample names {family: type} exposes (a histogram's _bucket,
    _sum and _count)."""
    return {name + suffix for name, kind in families_of_kind.items()
            for suffix in _SAMPLE_SUFFIXES[kind]}


def families(text):
    """{family: type} from the `# TYPE` lines of an exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out[name] = kind
    return out


def ours(text):
    """families(text) without the exposer's own (exposer_*)."""
    return {n: k for n, k in families(text).items()
            if n.startswith(("shardps_", "process_"))}


# A bsp model of two workers whose tensor "w" spans both shards (3 blocks
# of 1024 floats) and whose "b" is one block on one shard.
BSP_SPEC = spec_text("metrics_bsp", {"w": (4, 700), "b": (10,)},
                     consistency='mode = "bsp"\nworkers = 2')
BSP_W_FLOATS = 2800


# `shardps serve` flags under which every family appears: a hosted queue
# and a checkpoint each second (in the cluster's directory). Each shard
# hosts its own queue: the shards share one directory, and two shards
# creating one queue file at once race (the loser exits "already exists").
FULL_SHARD_ARGS = ["--queue", "batches{shard}:4:4096", "--checkpoint-dir",
                   "{dir}/checkpoints", "--checkpoint-every", "1s"]


def bsp_round(clients, tensor="w", size=BSP_W_FLOATS):
    """Each worker pushes `tensor` and clocks; then worker 0 pulls it."""
    for c in clients:
        c.push(tensor, np.ones(size, np.float32)).wait(10)
    handles = [c.clock() for c in clients]
    for h in handles:
        h.wait(10)
    return clients[0].pull(tensor).wait(10)


BSP_ROUNDS = 3


class Deployment:
    """What test_promtool.py and test_grafana_dashboard.py read: the
    expositions of a bsp cluster where every family of every kind of
    endpoint appears. `scrapes` is a list of (where, kind, text), kind a
    key of FAMILIES_OF: each of 2 shards (a hosted queue, a checkpoint
    taken, 2 workers' clocks), a host replica of both (held clock,
    lag, heard age), the endpoint and the metrics_text() of worker 0 (its
    pushes, pulls and clocks) and of an observer client (pulls and one
    push each shard refused: only workers push in bsp). Also
    `observer_text`, the observer's metrics_text()."""

    def __init__(self, binary):
        self.scrapes = []
        cluster = ShardCluster(binary, BSP_SPEC, 2, FULL_SHARD_ARGS)
        replica = None
        clients = []
        try:
            for url in cluster.metrics_urls:
                wait_for(f"a checkpoint's metrics at {url}",
                         lambda: "shardps_last_checkpoint_age_seconds" in
                         scrape(url))
            replica = Replica(binary, cluster)
            clients = [shardps.Client(cluster.cluster_file, worker=w,
                                      request_timeout=10.0,
                                      metrics_listen="0" if w == 0 else "")
                       for w in range(2)]
            observer = shardps.Client(cluster.cluster_file,
                                      request_timeout=10.0,
                                      metrics_listen="0")
            clients.append(observer)
            for _ in range(BSP_ROUNDS):
                bsp_round(clients[:2])
            observer.pull("w").wait(10)
            with pytest.raises(shardps.InvalidArgumentError):
                observer.push("w", np.ones(BSP_W_FLOATS, np.float32)).wait(10)

            # The replica holds every round's clock on both shards and
            # nothing announced is missing from its copies.
            def caught_up():
                s = Scrape(scrape(replica.metrics_url))
                held = [v for _, v in s.find("shardps_replica_held_clock")]
                behind = [v for _, v in
                          s.find("shardps_replica_behind_blocks")]
                heard = s.find("shardps_replica_heard_age_seconds")
                return (held == [BSP_ROUNDS] * 2 and behind == [0, 0] and
                        len(heard) == 2)
            wait_for("the replica to hold every round", caught_up)

            for shard in cluster.shards:
                self.scrapes.append((f"shard {shard.index}", "shard",
                                     scrape(shard.metrics_url)))
            self.scrapes.append(("replica", "replica",
                                 scrape(replica.metrics_url)))
            for name, c in (("worker 0", clients[0]), ("observer", observer)):
                self.scrapes.append((f"{name} {c.metrics_url}", "client",
                                     scrape(c.metrics_url)))
                self.scrapes.append((f"{name} metrics_text()",
                                     "client metrics_text", c.metrics_text()))
            self.observer_text = observer.metrics_text()
        finally:
            for c in clients:
                c.close()
            if replica is not None:
                replica.stop()
            cluster.stop()

    def served_sample_names(self, kinds=None):
        """Every sample name the scrapes of `kinds` (all when None) hold."""
        return {n for _, kind, text in self.scrapes
                if kinds is None or kind in kinds
                for n, _, _ in parse_metrics(text)}


@pytest.fixture(scope="session")
def deployment():
    """One Deployment for the session (its processes are stopped once it
    scraped them)."""
    return Deployment(binary())


DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         os.pardir, os.pardir, "deploy", "grafana",
                         "shardps.json")

# Variables Grafana defines itself.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms",
                    "__range", "__range_s", "__range_ms"}

_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left",
                    "group_right", "bool", "and", "or", "unless", "offset",
                    "inf", "nan", "le"}


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panel_targets(dashboard):
    """(panel, target) for every target of every panel."""
    return [(p, t) for p in dashboard["panels"] for t in p.get("targets", [])]


def variables_in(text):
    """Names of the Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) in text."""
    return {a or b or c for a, b, c in
            re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", text)}


def substitute(expr, values):
    """expr with each $name / ${name} replaced by values[name]."""
    def one(m):
        return values[m.group(1) or m.group(2)]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are
    not functions, aggregations, keywords, label names or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue
        if m.group(0).lower() in _PROMQL_KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def pytest_sessionfinish(session, exitstatus):
    """Exit 77 (ctest's SKIP_RETURN_CODE) when every test was skipped, e.g.
    without Debian's `prometheus`, so ctest reports the run as skipped."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    if reporter.stats.get("skipped") and not reporter.stats.get("passed"):
        session.exitstatus = 77
