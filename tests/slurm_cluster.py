"""A real single-node SLURM for the tests: Debian's munge and slurm-wlm daemons on this machine.

`make test` installs the packages where it runs as root (as CI does); :func:`slurm_cluster`
starts munged, slurmctld and slurmd with their state, sockets and logs in a temporary folder and
on free loopback ports, and stops them by their pid files afterwards. It needs root (slurmd
starts jobs as their users); without the packages or root the tests that use it are skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SBIN = Path("/usr/sbin")


def missing() -> str:
    """Why no cluster can start here ('' when one can)."""
    absent = [d for d in DAEMONS if not (SBIN / d).exists()]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: slurm-wlm, munge; `make test` installs them as root)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs"
    return ""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _conf(tmp: Path, cpus: int) -> str:
    host = socket.gethostname().split(".")[0]
    ctld_port, d_port = _free_ports(2)
    return f"""\
ClusterName=simclr-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={tmp}/munge.socket
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=2
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(tmp: Path, cpus: int = 2, timeout: float = 60):
    """Start munged, slurmctld and slurmd; yields the environment (SLURM_CONF) that `sbatch`,
    `squeue` and `scancel` need; stops every daemon on exit."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "state").mkdir(exist_ok=True)
    (tmp / "spool").mkdir(exist_ok=True)
    key = tmp / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = tmp / "slurm.conf"
    conf.write_text(_conf(tmp, cpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run([SBIN / "munged", "--force", f"--socket={tmp}/munge.socket", f"--key-file={key}",
                        f"--pid-file={tmp}/munged.pid", f"--log-file={tmp}/munged.log", f"--seed-file={tmp}/munge.seed"],
                       check=True, env=env, capture_output=True)
        started.append(tmp / "munged.pid")
        subprocess.run([SBIN / "slurmctld", "-c", "-f", str(conf)], check=True, env=env, capture_output=True)
        started.append(tmp / "slurmctld.pid")
        subprocess.run([SBIN / "slurmd", "-f", str(conf)], check=True, env=env, capture_output=True)
        started.append(tmp / "slurmd.pid")
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if out.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline:
                logs = "\n".join(f"{p.name}: {p.read_text()[-2000:]}" for p in tmp.glob("*.log"))
                raise RuntimeError(f"SLURM did not come up in {timeout} s (sinfo: {out.stdout!r} {out.stderr!r})\n{logs}")
            time.sleep(0.5)
        yield env
    finally:
        for pid_file in reversed(started):
            _stop(pid_file)
        shutil.rmtree(tmp / "spool", ignore_errors=True)
