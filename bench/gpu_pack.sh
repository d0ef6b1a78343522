#!/usr/bin/env bash
# Make .gpu/, the folder that travels to a GPU machine for `python -m bench.gpu_check` (issue 42):
# Beauty prepared, embedded (MiniLM) and tokenized (R3-VAE, the default) here on the CPU, so the GPU
# machine needs no embedding model (the bundled MiniLM is 88 MB), and wheels of what its Python
# (3.12 with torch, transformers, accelerate, numpy, pyarrow, scipy, ...) lacks. About 27 MB. Run from
# the repo root after `pip install -e .`:
#
#     bash bench/gpu_pack.sh [RAW_DIR]     # default ../shared/datasets/amazon-beauty
#
# then, on the device (docs/benchmarks.md):
#     python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl && python3 -m pip install -q --no-index \
#       --no-deps --no-build-isolation -e . && python3 -m bench.gpu_check --dataset .gpu/amazon-beauty --out $OUT
set -euo pipefail
raw=${1:-../shared/datasets/amazon-beauty}
exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
mkdir -p .gpu/wheels
if [ ! -f .gpu/amazon-beauty/stats.json ]; then
  OMP_NUM_THREADS=1 genrec prepare amazon-beauty --raw-dir "$raw" --out .gpu/amazon-beauty --no-download
fi
OMP_NUM_THREADS=1 genrec embed --dataset .gpu/amazon-beauty   # cached: a second run does nothing
[ -f .gpu/amazon-beauty/tokenizer/semantic_ids.npy ] || OMP_NUM_THREADS=1 genrec train-tokenizer --dataset .gpu/amazon-beauty
for wheel in marisa-trie==1.4.1; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels "$wheel"
done
du -sh .gpu
