"""Start and drive a test API server process: for pytest fixtures, benchmarks and Molecule."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KubeAPIServer:
    """A running `python -m tests.kubeapi` process and the kubeconfig that reaches it."""

    kubeconfig: Path
    url: str
    process: subprocess.Popen

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._call("GET", "/_stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "/_stats")

    def set_faults(self, rate: float, faults=("500",), seed: int | None = None,
                   verbs: list[str] | None = None) -> dict:
        return self._call("PUT", "/_faults", {"rate": rate, "faults": list(faults), "seed": seed,
                                              "verbs": verbs})

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        request = urllib.request.Request(f"{self.url}/_pods/{namespace}/{name}/log",
                                         data=text.encode(), method="PUT")
        urllib.request.urlopen(request, timeout=10).close()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True):  # noqa: A002
        """Run the real kubectl (from the virtual environment) against this server."""
        kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
        return subprocess.run([kubectl, "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, check=check,
                              timeout=120)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def loopback_address() -> str:
    """A random address of 127.0.0.0/8. Clients cache API discovery per server address
    (kubernetes.core in the temp directory, kubectl under ~/.kube/cache): a server on a reused
    127.0.0.1 port would be taken for the earlier one, with the APIs that one served."""
    return "127.{}.{}.{}".format(*(random.randint(1, 254) for _octet in range(3)))


def start_server(kubeconfig: Path, *options: str, timeout: float = 30.0) -> KubeAPIServer:
    """Start a server on a free port of its own loopback address and wait until it has written
    its kubeconfig."""
    kubeconfig = Path(kubeconfig)
    if "--host" not in options:
        options = ("--host", loopback_address(), *options)
    kubeconfig.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log = open(kubeconfig.with_suffix(".log"), "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.kubeapi", "--kubeconfig", str(kubeconfig), *options],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not kubeconfig.exists():
        if process.poll() is not None:
            raise RuntimeError(f"test API server exited with {process.returncode}: "
                               f"{kubeconfig.with_suffix('.log').read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("test API server did not start in time")
        time.sleep(0.05)
    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    return KubeAPIServer(kubeconfig, config["clusters"][0]["cluster"]["server"], process)
