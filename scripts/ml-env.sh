#!/usr/bin/env bash
# Makes (or reuses) the Python environment of the real-stack tests and examples in .venv-ml: torch,
# transformers, tokenizers, trl and datasets from PyPI, plus the laser client. Prints the install time.
# torch: a CPU wheel found by pip's --find-links (PIP_FIND_LINKS, e.g. /opt/wheels) is used when there
# is one; otherwise PyPI's Linux wheel, which pulls its nvidia-* packages even on CPU (a --no-deps
# install fails at `import torch`). Set LASER_ML_VENV to put the environment elsewhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LASER_ML_VENV:-$root/.venv-ml}"
packages=(transformers tokenizers trl datasets accelerate 'pyzmq>=25' 'protobuf>=4.21' 'pytest>=7')
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, trl, datasets, zmq, pytest" >/dev/null 2>&1; then
  echo "ml-env: reusing $venv"
  exit 0
fi
start=$(date +%s)
python3 -m venv "$venv"
torch_spec=torch
tag="cp$(python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')"
for dir in ${PIP_FIND_LINKS:-} /opt/wheels; do
  wheel=$(ls "$dir"/torch-*+cpu-"$tag"-"$tag"-*linux*_"$(uname -m)".whl 2>/dev/null | head -1 || true)
  if [ -n "$wheel" ]; then torch_spec="$wheel"; break; fi
done
echo "ml-env: installing torch ($torch_spec) and ${packages[*]} into $venv"
"$venv/bin/pip" install -q --disable-pip-version-check "$torch_spec" "${packages[@]}" 2>&1 | grep -v "Running pip as the 'root' user" || true
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$root/clients/python" 2>&1 | grep -v "Running pip as the 'root' user" || true
rm -rf "$root/clients/python/build" "$root/clients/python/laser_client.egg-info"
"$venv/bin/python" -c "import torch, transformers, trl, datasets; print('ml-env: torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__)"
echo "ml-env: install took $(( $(date +%s) - start )) s"
