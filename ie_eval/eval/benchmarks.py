"""Benchmark SPEC strings -> a pointwise view (records with truth) and a preference view (groups).

    synth:DIR        synthetic benchmark: DIR/manifest.jsonl. Pointwise: one record per pair
                     (MOS) or per (pair, critique) (critique scores). Pairwise: the two edits
                     of one instruction (`meta.group_id`, twin pairs), ranked by mean MOS
                     (equal means are ties); per-dim truth from each MOS dim.
    manifest:PATH    any manifest (read_manifest): pointwise only.
    iebench:PATH     IE-Bench-4k table, ie_critic_r1:PATH IE-Critic-R1's training layout: pointwise
                     on the one overall MOS for a single-score scorer (a think_answer critic),
                     on the three MOS where the table has them.
    pairwise:PATH    A/B table (adapters.load_pairwise); also genai_bench:PATH, aurora_bench:PATH,
                     editreward_data:PATH (EditReward-Data's training layout).
    kway:PATH        K-way table (adapters.load_kway); also editreward_bench:PATH.

Records are split by source (`--split`, the source-disjoint hash split) before the views
are built, so a group never straddles splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ie_eval.data.adapters import PREFERENCE_ADAPTERS, load_dataset
from ie_eval.data.adapters.preference import PreferenceGroup, group_preferences, synth_groups
from ie_eval.data.readers import read_manifest
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, OVERALL_DIMS, EditRecord, overall_mos
from ie_eval.data.splits import DEFAULT_SALT, split_records
from ie_eval.metrics.preference import BENCH_TIE_POLICIES, TiePolicy

BENCH_KINDS: tuple[str, ...] = ("synth", "manifest", "iebench", "ie_critic_r1", *PREFERENCE_ADAPTERS)
DEFAULT_SPLIT_RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass
class Benchmark:
    """What one evaluation runs on.

    records: every record of the benchmark (after split); `pointwise(dims)` selects those with truth.
    groups: preference groups (overall ranks); `dim_ranks[group_id][dim]` per-dim ranks when known.
    limit: at most this many pointwise items (the first ones).
    """

    spec: str
    kind: str
    records: list[EditRecord]
    groups: list[PreferenceGroup] = field(default_factory=list)
    dim_ranks: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    tie_policy: TiePolicy = field(default_factory=TiePolicy)
    limit: int | None = None

    def pointwise(self, dims: Sequence[str]) -> list[EditRecord]:
        """Records with truth for `dims`: one per pair for MOS dims, one per critique for critique dims."""
        if set(dims) <= set(MOS_DIMS) or tuple(dims) == OVERALL_DIMS:
            wanted = overall_mos if tuple(dims) == OVERALL_DIMS else (lambda r: r.mos)
            seen: set[str] = set()
            out = []
            for record in self.records:
                if wanted(record) is not None and record.pair_id not in seen:
                    seen.add(record.pair_id)
                    out.append(record)
        elif set(dims) <= set(CRITIQUE_DIMS):
            out = [r for r in self.records if r.critique_scores is not None and r.critique is not None]
        else:
            raise ValueError(f"dims {tuple(dims)} mix MOS and critique dimensions")
        return out[: self.limit] if self.limit else out


def parse_bench_spec(spec: str) -> tuple[str, str]:
    kind, _, path = spec.partition(":")
    if kind not in BENCH_KINDS or not path:
        raise ValueError(f"bad bench spec {spec!r}; use KIND:PATH with KIND one of {BENCH_KINDS}")
    return kind, path


def load_benchmark(spec: str, split: str | None = None, salt: str = DEFAULT_SALT, strict: bool = True) -> Benchmark:
    """Read a benchmark from its SPEC, keeping only `split` of the source-disjoint split when given."""
    kind, path = parse_bench_spec(spec)
    if kind == "synth":
        directory = Path(path)
        manifest = directory / "manifest.jsonl" if directory.is_dir() else directory
        records = read_manifest(manifest, strict=strict).records
    elif kind == "manifest":
        records = read_manifest(path, strict=strict).records
    else:
        records = load_dataset(kind, path, strict=strict).records
    if split is not None:
        splits = split_records(records, DEFAULT_SPLIT_RATIOS, salt=salt)
        if split not in splits:
            raise ValueError(f"split {split!r}: not one of {sorted(splits)}")
        records = splits[split]
    policy = BENCH_TIE_POLICIES.get(kind, BENCH_TIE_POLICIES["pairwise"])
    bench = Benchmark(spec=spec, kind=kind, records=records, tie_policy=policy)
    if kind == "synth":
        bench.groups, bench.dim_ranks = synth_groups(bench.pointwise(MOS_DIMS))
    elif kind in PREFERENCE_ADAPTERS:
        bench.groups = group_preferences(records)
    return bench


def limit_benchmark(bench: Benchmark, limit: int | None) -> Benchmark:
    """At most `limit` pointwise items and `limit` groups (the first ones, in benchmark order)."""
    if not limit:
        return bench
    return replace(bench, groups=bench.groups[:limit], limit=limit)


def blank_benchmark(bench: Benchmark, blank_path: Path) -> Benchmark:
    """The same benchmark with every image replaced by one mid-gray PNG (the no-vision control)."""
    from PIL import Image

    from ie_eval.data.datamodule import blank_images

    Image.new("RGB", (64, 64), (128, 128, 128)).save(blank_path)
    groups = [replace(g, records=tuple(blank_images(g.records, blank_path))) for g in bench.groups]
    return replace(bench, records=blank_images(bench.records, blank_path), groups=groups)
