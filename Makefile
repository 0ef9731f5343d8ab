# Every target installs what it needs itself: a fresh clone needs only `make test`.
# A rerun of a training target redoes its run: the targets pass --overwrite, which the commands need to
# write into a run directory an earlier run left checkpoints, an export or results in.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/synth
RUNS ?= runs

# Nothing here may reach a model hub: tiny presets are built offline.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test lint synth pretrain train-rm train-pairwise demo sft grpo gcpo serve-rm ablate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[serve,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check ie_eval tests benchmarks

$(DATA)/manifest.jsonl: $(STAMP)
	$(VENV)/bin/ie-eval data synth --out $(DATA) --n-sources 160 --seed 0

synth: $(DATA)/manifest.jsonl

# Vision-language pretraining of the tiny Qwen3.5 backbone on the synthetic world (2-core CPU, about 90
# minutes: 22,000 steps); installs the export as the `tiny-qwen3.5-synth` preset that every tiny stage starts from.
pretrain: $(STAMP)
	$(VENV)/bin/ie-eval pretrain --config configs/pretrain/tiny.yaml --preset tiny-qwen3.5-synth --overwrite

# RE-Reward, tiny config, synthetic benchmark, CPU. Export lands in runs/rm-tiny/export.
train-rm: $(DATA)/manifest.jsonl
	$(VENV)/bin/ie-eval fit --config configs/rm/tiny.yaml --data.init_args.manifest $(DATA)/manifest.jsonl --overwrite

# ReasonEdit critic SFT (dual head, phased schedule), tiny config, synthetic benchmark, CPU; export lands in
# runs/sft-tiny/export. Then critiques of the source-disjoint test split: head and parsed-text SRCC, format rate.
sft: $(DATA)/manifest.jsonl
	$(VENV)/bin/ie-eval fit --config configs/sft/tiny.yaml --data.init_args.manifest $(DATA)/manifest.jsonl \
		--data.init_args.score_only_manifest $(DATA)/pairs.jsonl --overwrite
	$(VENV)/bin/ie-eval critique --ckpt runs/sft-tiny/export --manifest $(DATA)/manifest.jsonl --split test \
		--out runs/sft-tiny/critiques_test.jsonl --max-new-tokens 160 --batch-size 32 --overwrite
	$(VENV)/bin/ie-eval critique --ckpt runs/sft-tiny/export --manifest $(DATA)/manifest.jsonl --split test \
		--out runs/sft-tiny/critiques_test_blank.jsonl --max-new-tokens 160 \
		--batch-size 32 --blank-images --overwrite

# GRPO on the SFT critic, RE-Reward served over HTTP on 127.0.0.1 (as in real use); builds both first if absent.
# Prints held-out reward / SRCC before and after; runs/grpo-tiny/grpo_results.json, export in runs/grpo-tiny/export.
SFT_EXPORT := runs/sft-tiny/export/critic_config.json
RM_EXPORT := runs/rm-tiny/export/reward_config.json
$(SFT_EXPORT):
	$(MAKE) sft
$(RM_EXPORT):
	$(MAKE) train-rm
grpo: $(DATA)/manifest.jsonl $(SFT_EXPORT) $(RM_EXPORT)
	$(VENV)/bin/ie-eval grpo --serve-rm runs/rm-tiny/export --config configs/grpo/tiny.yaml \
		--data.init_args.manifest $(DATA)/pairs.jsonl --overwrite

# The pairwise preference reward model (EditReward's objective) on a 600-source synthetic set (made if absent):
# prints held-out pairwise accuracy next to SSIM(source, edit), and sigma on close vs wide pairs.
PAIRWISE_DATA := data/synth-pairwise
$(PAIRWISE_DATA)/manifest.jsonl: $(STAMP)
	$(VENV)/bin/ie-eval data synth --out $(PAIRWISE_DATA) --n-sources 600 --seed 0

train-pairwise: $(PAIRWISE_DATA)/manifest.jsonl
	$(VENV)/bin/ie-eval pairwise --config configs/pairwise/tiny.yaml --data $(PAIRWISE_DATA) --out runs/pairwise-tiny --overwrite

# GCPO (Edit-R1) on the SFT critic from preference pairs of the 600-source set: held-out pairwise accuracy of
# the parsed scores, SFT start vs end, on the same seeded draws. Builds the SFT critic first if absent.
gcpo: $(PAIRWISE_DATA)/manifest.jsonl $(SFT_EXPORT)
	$(VENV)/bin/ie-eval gcpo --config configs/gcpo/tiny.yaml --overwrite

# One-factor-at-a-time ablation grid x 3 seeds on a 64-source synthetic set (experiments/ablate.yaml);
# writes runs/ablate/ablations.md and docs/ablations.md. Interrupted? Run it again: finished runs are kept.
ABLATE_DATA := data/synth-ablate
$(ABLATE_DATA)/manifest.jsonl: $(STAMP)
	$(VENV)/bin/ie-eval data synth --out $(ABLATE_DATA) --n-sources 64 --seed 0
ablate: $(ABLATE_DATA)/manifest.jsonl
	$(VENV)/bin/ie-eval ablate --grid experiments/ablate.yaml --out $(RUNS)/ablate --doc docs/ablations.md

# The README's one-command main job: data, train, test table, blank-image check, scatter plot.
demo: $(STAMP)
	$(VENV)/bin/ie-eval demo --data $(DATA) --out $(RUNS)/demo --overwrite

# Reward server for GRPO (docs/serving.md); limits and batching from --config, see ServeConfig.
RM_CKPT ?= runs/rm-tiny/export
serve-rm: $(STAMP)
	$(VENV)/bin/ie-eval serve-rm --ckpt $(RM_CKPT)

clean:
	rm -rf $(RUNS) $(DATA) .pytest_cache
