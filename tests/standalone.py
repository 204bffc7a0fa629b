"""A real Spark standalone cluster on this machine, for tests.

One master and N workers, each its own JVM, started from the installed pyspark with
``spark-class`` (which ``exec``s java, so the PID we hold is the JVM's), every one with its
own work and scratch folders under one root. Jobs go to it with ``spark-submit``, each a
driver JVM of its own whose executors the workers launch as further JVMs.

Everything started here is stopped by PID: :meth:`StandaloneCluster.stop` ends the
processes this object started and the processes those started (executors, Python
workers), noted before anything is killed, and nothing else.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import psutil
import pyspark

SPARK_HOME = os.path.dirname(os.path.abspath(pyspark.__file__))
SPARK_CLASS = os.path.join(SPARK_HOME, "bin", "spark-class")
SPARK_SUBMIT = os.path.join(SPARK_HOME, "bin", "spark-submit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - localhost only
        return json.loads(resp.read().decode())


class StandaloneCluster:
    """``with StandaloneCluster(root, python=...) as c: c.submit([...])``."""

    def __init__(self, root: str, workers: int = 2, cores: int = 1, memory: str = "2g", python: str = "python3"):
        self.root = root
        self.n_workers, self.cores, self.memory, self.python = workers, cores, memory, python
        self.port, self.webui_port = free_port(), free_port()
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._started: list[subprocess.Popen] = []
        self._killed: list[subprocess.Popen] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": SPARK_HOME,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "384m",
            "SPARK_LOG_DIR": os.path.join(self.root, "logs"),
            "PYSPARK_PYTHON": self.python,
        })
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYTHONPATH", None)
        env.update(extra)
        return env

    def _spawn(self, args: list[str], log_name: str, env: dict) -> subprocess.Popen:
        os.makedirs(os.path.join(self.root, "logs"), exist_ok=True)
        log = open(os.path.join(self.root, "logs", log_name), "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()  # the child holds its own descriptor
        self._started.append(proc)
        return proc

    def start(self, timeout: float = 120.0) -> "StandaloneCluster":
        os.makedirs(self.root, exist_ok=True)
        self.master = self._spawn([SPARK_CLASS, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(self.port), "--webui-port", str(self.webui_port)],
                                  "master.log", self.env())
        for i in range(self.n_workers):
            work, local = (os.path.join(self.root, f"worker-{i}", d) for d in ("work", "local"))
            os.makedirs(work, exist_ok=True)
            os.makedirs(local, exist_ok=True)
            env = self.env(SPARK_WORKER_DIR=work, SPARK_LOCAL_DIRS=local)
            self.workers.append(self._spawn(
                [SPARK_CLASS, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", str(self.cores), "--memory", self.memory, "--work-dir", work,
                 "--webui-port", str(free_port()), self.url], f"worker-{i}.log", env))
        self.wait_for(lambda s: s.get("aliveworkers", 0) >= self.n_workers, timeout, "workers to register")
        return self

    def state(self) -> dict:
        """The master's status page as JSON (workers, apps)."""
        return get_json(f"http://127.0.0.1:{self.webui_port}/json/")

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            for proc in [self.master, *self.workers]:
                if proc is not None and proc.poll() is not None and proc not in self._killed:
                    raise RuntimeError(f"a cluster JVM exited early; see {proc.log_path}")
            try:
                last = self.state()
                if predicate(last):
                    return last
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"standalone cluster: timed out waiting for {what}; last state {last}")

    def descendants(self, proc: subprocess.Popen) -> list[psutil.Process]:
        try:
            return psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def executor_pids(self, worker: int) -> dict[str, int]:
        """executor id -> PID of the executor JVMs worker `worker` launched."""
        out = {}
        for child in self.descendants(self.workers[worker]):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "--executor-id" in cmd:
                out[cmd[cmd.index("--executor-id") + 1]] = child.pid
        return out

    def kill_worker(self, worker: int) -> list[psutil.Process]:
        """SIGKILL one worker JVM, as a crash would; returns the processes it had started
        (its executors), which are left to notice on their own."""
        proc = self.workers[worker]
        children = self.descendants(proc)
        self._killed.append(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return children

    def submit(self, args: list[str], log_path: str, env: dict) -> subprocess.Popen:
        """spark-submit to this master in client mode; output to log_path."""
        log = open(log_path, "wb")  # noqa: SIM115
        proc = subprocess.Popen([SPARK_SUBMIT, "--master", self.url, "--deploy-mode", "client", *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                start_new_session=True)
        log.close()
        self._started.append(proc)
        return proc

    def stop(self) -> None:
        """End every process started here and their descendants, by PID (drivers first)."""
        procs = list(reversed(self._started))
        victims: list[psutil.Process] = []
        for proc in procs:
            victims.extend(self.descendants(proc))
            try:
                victims.append(psutil.Process(proc.pid))
            except psutil.NoSuchProcess:
                pass
        for p in victims:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(victims, timeout=15)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
