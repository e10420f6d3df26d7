"""What changed: the running build next to the checkout and the container's life. Pure.

``build_changes(facts) -> ChangeSummary | None`` puts side by side ``/version`` (the running
build), the checkout's HEAD and the commits before it, the proxy container's creation time,
start time and restart count, and the deploy run's conclusion and failed-step lines when a
GitHub Actions run log was read. When the running build is not HEAD it says so: a failed build
re-upped the previous image, so the push is not running. None when no step gave any of these.
"""

from __future__ import annotations

from bot.diagnosis import runningrules as rr
from bot.diagnosis.facts import Facts, same_commit
from bot.models import ChangeSummary


def build_changes(f: Facts) -> ChangeSummary | None:
    """The summary (see module doc)."""
    v, commits, st, ci = f.version, f.commits, f.proxy_state, f.ci_run
    d = rr.proxy_detail(f)
    if v is None and not commits and st is None and ci is None:
        return None
    out = ChangeSummary(
        running_version=v.version if v else None, running_commit=v.git_commit if v else None,
        running_built=v.build_date if v else None,
        head_commit=commits[0].sha if commits else None, head_subject=commits[0].subject if commits else None,
        previous_commits=[f"{c.sha[:7]} {c.subject}" for c in (commits or [])[1:]],
        container_created=d.created.isoformat() if d and d.created else None,
        container_started=st.started_at.isoformat() if st and st.started_at else None,
        restart_count=st.restart_count if st else None)
    if v is not None and v.git_commit and commits:
        out.running_is_head = same_commit(v.git_commit, commits[0].sha)
        out.running_commit_position = next(
            (i for i, c in enumerate(commits) if same_commit(v.git_commit, c.sha)), None)
        if not out.running_is_head:
            where = (f"HEAD~{out.running_commit_position}" if out.running_commit_position is not None
                     else "a commit not among the last ones")
            out.notes.append(f"The running build ({v.git_commit}) is {where}, not HEAD ({commits[0].sha[:7]}): "
                             "a failed build re-upped the previous image; the push is not running.")
    elif v is None and commits:
        out.notes.append("/version did not answer: the running build is unknown.")
    if commits and commits[0].committed_at and d and d.created:
        if d.created < commits[0].committed_at:
            out.notes.append(f"The container was created {d.created:%Y-%m-%d %H:%M}Z, before HEAD was committed "
                             f"({commits[0].committed_at:%Y-%m-%d %H:%M}Z): it does not run HEAD.")
    if st is not None and st.restart_count:
        out.notes.append(f"RestartCount={st.restart_count}.")
    if ci is not None:
        out.ci_conclusion, out.ci_lines = ci.conclusion, list(ci.lines)
        out.ci_failed_step = ci.failed_step
    return out
