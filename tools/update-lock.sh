#!/usr/bin/env bash
# Regenerate requirements.lock: the exact versions (with hashes) of every package the pipeline
# and its tests install, for Python 3.11 on x86_64 Linux. torch is left out, with its CUDA
# packages: it is installed first from the CPU wheel (pip install torch==2.13.0), and the lock is
# resolved against that version. Needs uv (pip install uv) and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=2.13.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "torch==$TORCH" > "$tmp/torch.txt"
common=(pyproject.toml --extra test --python-version 3.11
        --python-platform x86_64-unknown-linux-gnu -c "$tmp/torch.txt")
uv pip compile "${common[@]}" -q -o "$tmp/all.txt"
skip=()
for pkg in $(grep -oE '^(torch|triton|cuda-[a-z0-9-]+|nvidia-[a-z0-9-]+)==' "$tmp/all.txt" | tr -d '='); do
  skip+=(--no-emit-package "$pkg")
done
uv pip compile "${common[@]}" --generate-hashes "${skip[@]}" \
  --custom-compile-command "tools/update-lock.sh" -o requirements.lock
echo "wrote requirements.lock (torch==$TORCH installed separately, CPU build)"
