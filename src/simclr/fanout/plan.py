"""What a fan-out runs: read from the pipeline's DAG (DVC's own), never from a list kept by hand.

The DAG of dvc.yaml narrows to a trunk (check_params -> prepare -> pretrain), widens into many
stages that do not depend on one another (every ablation point, every finetune fraction,
linear_eval), then gathers them again (report). A **join** is a stage with two direct
dependencies neither of which is upstream of the other (report gathers linear_eval and the
points). The fanned-out stages are the stages that are not joins and after which only joins
follow: no two of them depend on each other, so they can run at once. Their upstream runs first,
in the workspace; the joins run last, in the workspace, once the fanned-out results are there.

A job reproduces its stage in a workspace of its own (:mod:`simclr.fanout.job`), at a commit that
holds the workspace exactly as it is (:func:`snapshot_commit`), so that the stage's dvc.lock
entry, and with it DVC's run-cache key, is the one a `dvc repro` in the workspace would write.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from simclr.core.errors import SimCLRError


@dataclass(frozen=True)
class StageJob:
    """One fanned-out stage and what its workspace needs before ``dvc repro -s <stage>``."""

    stage: str
    restore: tuple[str, ...]  # upstream stages whose cached outputs are checked out (or pulled)
    rerun: tuple[str, ...]  # upstream stages whose uncached output the stage reads: run again (-s)


@dataclass(frozen=True)
class Pipeline:
    """The stages of dvc.yaml as DVC builds them, with what fans out."""

    upstream: tuple[str, ...]  # in the order dvc repro runs them
    fanned: tuple[StageJob, ...]
    joins: tuple[str, ...]


def read_pipeline(repo_root: Path) -> Pipeline:
    """The DAG of ``repo_root``'s dvc.yaml, split into upstream, fanned-out stages and joins."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            graph = repo.index.graph  # edge a -> b: stage a depends on stage b
            return _split(graph, nx, Path(repo.root_dir))
    except DvcException as exc:
        raise SimCLRError(f"DVC cannot read the pipeline in {repo_root}: {exc}") from None


def _split(graph, nx, root: Path) -> Pipeline:
    # as `dvc repro` takes it in the project's root (DVC's own `addressing` is relative to the cwd)
    name = {s: s.name if Path(s.path) == root / "dvc.yaml" else f"{Path(s.path).relative_to(root).as_posix()}:{s.name}"
            for s in graph}
    deps_of = {s: set(graph.successors(s)) for s in graph}
    upstream_of = {s: nx.descendants(graph, s) for s in graph}

    def is_join(s) -> bool:
        direct = list(deps_of[s])
        return any(b not in upstream_of[a] and a not in upstream_of[b] for a, b in itertools.combinations(direct, 2))

    joins = {s for s in graph if is_join(s)}
    fanned = [s for s in graph if s not in joins and nx.ancestors(graph, s) <= joins]
    upstream = set().union(*(upstream_of[s] for s in fanned)) if fanned else set()
    after = set(graph) - upstream - set(fanned)
    order = list(reversed(list(nx.topological_sort(graph))))  # dependencies first

    def uncached_dep_producers(s) -> tuple[str, ...]:
        """Upstream stages whose uncached output is read by ``s`` or by another upstream stage of it:
        such a file is in no cache, so the job makes it again (check_params' stamp)."""
        readers = {s} | upstream_of[s]
        read = {d.fs_path for r in readers for d in r.deps}
        return tuple(name[u] for u in order if u in upstream_of[s]
                     and any(not o.use_cache and o.fs_path in read for o in u.outs))

    jobs = [StageJob(stage=name[s], restore=tuple(name[u] for u in order if u in upstream_of[s] and any(o.use_cache for o in u.outs)),
                     rerun=uncached_dep_producers(s)) for s in order if s in fanned]
    return Pipeline(upstream=tuple(name[s] for s in order if s in upstream), fanned=tuple(jobs),
                    joins=tuple(name[s] for s in order if s in after))


def sweep(sets: list[str]) -> list[tuple[str, ...]]:
    """``-S`` values as ``dvc exp run`` reads them: each ``key=v1,v2`` lists values, and several
    ``-S`` give every combination. Returns one tuple of ``key=value`` per experiment."""
    axes = []
    for s in sets:
        key, sep, values = s.partition("=")
        if not sep or not key.strip() or not values:
            raise SimCLRError(f"-S {s!r} is not key=value or key=v1,v2 (e.g. -S temperature=0.1,0.5)")
        axes.append([f"{key.strip()}={v.strip()}" for v in values.split(",")])
    return list(itertools.product(*axes))


def experiment_name(assignments: tuple[str, ...]) -> str:
    """A name DVC and git accept, read off the assignments: ``temperature-0.5_pretrain.lr-2``."""
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", a.replace("=", "-")) for a in assignments).strip("-.")


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SimCLRError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def snapshot_commit(repo: Path) -> str:
    """A commit of the workspace exactly as it is (tracked and untracked files that git does not
    ignore), its parent HEAD; the user's index, branch and files are not touched. Kept from git's
    garbage collection by the ref ``refs/simclr/fanout``."""
    try:
        head = git(repo, "rev-parse", "--verify", "HEAD")
    except SimCLRError:
        raise SimCLRError(f"{repo} has no commit: `simclr fanout` runs each job at a commit of the workspace "
                          "(git add -A && git commit)") from None
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", "HEAD", env=index)
        git(repo, "add", "-A", env=index)
        tree = git(repo, "write-tree", env=index)
    if tree == git(repo, "rev-parse", "HEAD^{tree}"):
        commit = head
    else:
        commit = git(repo, "commit-tree", tree, "-p", head, "-m", "simclr fanout: the workspace as it was",
                     env={"GIT_AUTHOR_NAME": "simclr fanout", "GIT_AUTHOR_EMAIL": "fanout@localhost",
                          "GIT_COMMITTER_NAME": "simclr fanout", "GIT_COMMITTER_EMAIL": "fanout@localhost"})
    git(repo, "update-ref", "refs/simclr/fanout", commit)
    return commit
