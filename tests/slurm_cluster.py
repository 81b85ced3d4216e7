"""A real one-node Slurm cluster for the tests in test_slurm_real.py.

``start(root)`` writes a minimal slurm.conf and a munge key under ``root``, starts munged,
slurmctld and slurmd in the foreground as children of this process (so their pids are
known), and waits for ``sinfo`` to show the node idle. ``Cluster.stop()`` cancels what is
left in the queue and stops those three processes, by their pids, and nothing else.

The configuration works in a container without systemd or cgroups: process tracking by
process group (proctrack/pgid), no task plugin, no accounting database. The node
(this machine, under its own hostname, on 127.0.0.1) offers at least 2 CPUs and is
scheduled per CPU (select/cons_tres with CR_CPU), so two one-CPU tasks run side by side.
Partitions: ``debug`` (the default, 30 min limit) and ``billed``, which admits only the
account ``lwscale-test``: without an accounting database Slurm validates no account, so
this partition is how a test gets an account refused (it refuses every account here).
Limits are enforced at submission (EnforcePartLimits=ALL), as on most real clusters.
KillWait is 5 s (a stopped task's step boundary and checkpoint come well within it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")

CONF = """\
ClusterName=lwscale-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
EnforcePartLimits=ALL
KillWait=5
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=30 State=UP
PartitionName=billed Nodes={host} MaxTime=30 AllowAccounts=lwscale-test State=UP
"""


def which(name: str) -> str | None:
    """``name`` on PATH, or in the sbin directories a non-root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [b for b in DAEMONS + CLIENTS if which(b) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} not found; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    conf: Path
    node: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            [which(args[0]) or args[0], *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def jobs(self) -> dict[str, str]:
        """Every job (array task) in the queue: id -> state."""
        out = self.run("squeue", "-h", "-r", "-o", "%i %T").stdout.split()
        return dict(zip(out[::2], out[1::2]))

    def job_field(self, job: str, name: str) -> str:
        text = self.run("scontrol", "show", "job", job).stdout
        for word in text.split():
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
        raise KeyError(f"{name} not in scontrol show job {job}")

    def wait_idle(self, timeout: float = 300) -> None:
        """Wait until the queue is empty; fail with the queue on timeout."""
        deadline = time.monotonic() + timeout
        while self.jobs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Slurm queue not empty after {timeout} s: {self.jobs()}")
            time.sleep(0.5)

    def log_tail(self, n: int = 5) -> str:
        lines = []
        for p in sorted((self.root / "log").glob("*")):
            tail = p.read_text(errors="replace").strip().splitlines()[-n:]
            lines += [f"{p.name}: {x}" for x in tail]
        return "\n".join(lines)

    def stop(self) -> None:
        """Cancel every job of this cluster, then stop the daemons this process started."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            ids = list(self.jobs()) if self.procs.get("slurmd") else []
            if ids:
                self.run("scancel", *ids, check=False)
                try:
                    self.wait_idle(timeout=30)
                except (TimeoutError, subprocess.SubprocessError):
                    pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def start(root: Path, timeout: float = 60) -> Cluster:
    """Start a one-node cluster whose files all live under ``root``. Raises RuntimeError
    (with the daemons' last log lines) when it does not come up; nothing is left running."""
    root = Path(root)
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    host = socket.gethostname().split(".")[0]
    sock = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(
        CONF.format(
            host=host,
            root=root,
            munge_socket=sock,
            ctld_port=_free_port(),
            d_port=_free_port(),
            cpus=max(2, os.cpu_count() or 1),
        )
    )
    cluster = Cluster(root, conf, host)
    env = cluster.env

    def launch(name: str, *args: str) -> None:
        log = open(root / "log" / f"{name}.out", "wb")
        cluster.procs[name] = subprocess.Popen(
            [which(name), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()

    try:
        launch(
            "munged",
            "--foreground",
            "--force",
            f"--socket={sock}",
            f"--key-file={key}",
            f"--log-file={root / 'log' / 'munged.log'}",
            f"--pid-file={root / 'munge' / 'munged.pid'}",
            f"--seed-file={root / 'munge' / 'munged.seed'}",
        )
        _wait(lambda: sock.exists(), timeout, "munged did not create its socket", cluster)
        launch("slurmctld", "-D", "-f", str(conf))
        launch("slurmd", "-D", "-f", str(conf), "-N", host)

        def idle() -> bool:
            state = cluster.run("sinfo", "-h", "-n", host, "-o", "%T", check=False, timeout=10).stdout.strip()
            return state == "idle"

        _wait(idle, timeout, "the node did not become idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(ok, timeout: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        dead = [n for n, p in cluster.procs.items() if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(dead)} exited" if dead else f"after {timeout:.0f} s"
            raise RuntimeError(f"{what} ({why}):\n{cluster.log_tail()}")
        time.sleep(0.2)
