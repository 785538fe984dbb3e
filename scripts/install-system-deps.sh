#!/usr/bin/env bash
# Install the Debian packages tickcast's local stack needs, only those missing.
# Java 17 and Maven are prerequisites (see README); Redis, Prometheus/promtool,
# Alertmanager, npm and Chromium (the console's browser tests) come from Debian's packages.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# The console: npm builds its assets; the browser tests drive Debian's Chromium.
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# PyTorch for training the MLP and LSTM only (training/torch_job.py runs under Debian's python3,
# TICKCAST_TORCH_PYTHON): PyPI's wheel needs GB of CUDA wheels; this is CPU-only, ~760 MB.
# The venv never imports torch: the worker and API score the exported ONNX graphs.
/usr/bin/python3 -c "import torch" >/dev/null 2>&1 || need+=(python3-torch)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]} — install them with your package manager (see README prerequisites)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged daemons; tickcast runs its own on its own ports.
for svc in redis-server prometheus prometheus-alertmanager prometheus-node-exporter; do
  (command -v systemctl >/dev/null 2>&1 && $SUDO systemctl stop "$svc" 2>/dev/null) || true
done
