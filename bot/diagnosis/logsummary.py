"""Summarize a proxy log for a chat reply: ``summarize_logs(text) -> LogSummary``. Pure.

Reads ``docker logs --timestamps`` output (any size: the text is streamed line by line,
never copied into a list). Each line is stripped of ANSI codes and redacted first; then:

* lines are grouped into templates with counts by drain3's ``TemplateMiner``, its state in
  memory only (no persistence handler: drain3's ``MemoryBufferPersistence`` would serialise
  the whole state on every new template, and a summary is never resumed); masking
  instructions for timestamps, IPs, hex and numbers; at most ``max_clusters`` clusters,
  least recently used evicted.
  Lines are masked in one regex pass equivalent to those instructions (:func:`mask`) and
  a cache of masked lines skips the miner for repeats, which is what keeps 50 MB fast;
* the first error line and the last ``last_n`` lines are kept (redacted, timestamps kept);
* a goroutine dump is collapsed: its first frames go to ``goroutine_dump`` and only its
  first lines plus a ``... N goroutine dump lines collapsed`` marker stay in ``last_lines``.
"""

from __future__ import annotations

import logging
import re
from collections import deque

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from bot.diagnosis.logscan import is_dump_line
from bot.diagnosis.redact import redact_line
from bot.diagnosis.textutil import DOCKER_TS_RE, clean_line, iter_lines
from bot.models import LogSummary, LogTemplate

logging.getLogger("drain3").setLevel(logging.WARNING)

_GO_TS_RE = re.compile(r"^(?:\[mysql\] )?\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ")
_ERROR_RE = re.compile(r"\b(?:error|fatal|panic|failed|denied|refused|no such host|deadline exceeded|"
                       r"address already in use|no space left)\b|^Error \d{4}", re.I)
# "2 healthy, 0 failed" / "0 errors" are counts, not errors.
_ZERO_COUNT_RE = re.compile(r"\b0 (?:failed|failures?|errors?)\b", re.I)
_MASKS = [
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "TS"),
    (r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", "TS"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "IP"),
    (r"\b0x[0-9a-fA-F]+\b", "HEX"),
    (r"\b[0-9a-f]{12,64}\b", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:ms|µs|us|ns|s|m|h|%|MB|MiB|GB|GiB|KB|KiB|B)?(?![\w.])", "NUM"),
]
_MASK_RE = re.compile("|".join(f"(?P<{mask}{i}>{rx})" for i, (rx, mask) in enumerate(_MASKS)))
_CACHE_MAX = 20000
_DIGITS = str.maketrans("0123456789", "0000000000")


def mask(message: str) -> str:
    """One-pass equivalent of the miner's masking instructions: ``<TS>``, ``<IP>``, ``<HEX>``, ``<NUM>``."""
    return _MASK_RE.sub(lambda m: f"<{(m.lastgroup or 'NUM').rstrip('0123456789')}>", message)


def _miner(max_clusters: int) -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_max_clusters = max_clusters
    config.drain_sim_th = 0.5
    config.masking_instructions = [MaskingInstruction(rx, mask) for rx, mask in _MASKS]
    return TemplateMiner(persistence_handler=None, config=config)


def _message(line: str) -> str:
    m = DOCKER_TS_RE.match(line)
    rest = line[m.end():] if m else line
    g = _GO_TS_RE.match(rest)
    return rest[g.end():] if g else rest


class _Dump:
    """State of a goroutine dump being collapsed."""

    def __init__(self) -> None:
        self.active = False
        self.frames: list[str] = []
        self.hidden = 0


def summarize_logs(text: str, *, last_n: int = 20, max_templates: int = 25, max_clusters: int = 300,
                   dump_frames: int = 10, extra_secrets: list[str] | None = None) -> LogSummary:
    """Summarize ``docker logs --timestamps`` text (see module doc). Never raises on odd input."""
    miner = _miner(max_clusters)
    extras = [s for s in (extra_secrets or []) if s and len(s) >= 3]
    cache: dict[str, int] = {}
    counts: dict[int, int] = {}
    examples: dict[int, str] = {}
    last: deque[str] = deque(maxlen=last_n)
    total = redacted = 0
    first_error: str | None = None
    dump = _Dump()
    kept_dump: list[str] = []

    def close_dump() -> None:
        nonlocal kept_dump
        if dump.hidden:
            last.append(f"... {dump.hidden} goroutine dump lines collapsed")
        kept_dump = dump.frames
        dump.active, dump.hidden = False, 0

    for line in iter_lines(text or ""):
        line = clean_line(line)
        if not line.strip():
            continue
        total += 1
        safe = redact_line(line, extras)
        if safe != line:
            redacted += 1
        msg = _message(safe)
        if not msg.strip():
            continue
        if msg.startswith(("panic: ", "fatal error: ")):
            if dump.active:
                close_dump()
            dump.active, dump.frames = True, [safe]
        elif dump.active:
            if is_dump_line(msg):
                if len(dump.frames) < dump_frames:
                    dump.frames.append(safe)
                if len(dump.frames) > 4:
                    dump.hidden += 1
                    continue
                last.append(safe)
                continue
            close_dump()
        if first_error is None and _ERROR_RE.search(_ZERO_COUNT_RE.sub("", msg)):
            first_error = safe
        last.append(safe)
        shape = msg.translate(_DIGITS)  # cheap key: lines differing only in digits share it
        cid = cache.get(shape)
        if cid is None:
            masked = mask(msg.strip())
            cid = cache.get(masked)
            if cid is None:
                cluster, _ = miner.drain.add_log_message(masked)
                cid = cluster.cluster_id
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[masked] = cache[shape] = cid
        counts[cid] = counts.get(cid, 0) + 1
        examples.setdefault(cid, safe)
        if len(counts) > 4 * max_clusters:
            live = {c.cluster_id for c in miner.drain.clusters}
            for key in [k for k in counts if k not in live]:
                counts.pop(key, None)
                examples.pop(key, None)
    if dump.active:
        close_dump()
    templates = []
    for cluster in miner.drain.clusters:
        n = counts.get(cluster.cluster_id, 0)
        if n:
            templates.append(LogTemplate(template=cluster.get_template(), count=n,
                                         example=examples.get(cluster.cluster_id, "")))
    templates.sort(key=lambda t: -t.count)
    return LogSummary(total_lines=total, redacted_lines=redacted, templates=templates[:max_templates],
                      first_error=first_error, last_lines=list(last), goroutine_dump=kept_dump)
