#!/usr/bin/env bash
# Install the console's chart library from npm (package-lock.json pins it) and copy the files
# the pages load into static/vendor/. Run by `make deps`; nothing downloads at run time.
set -euo pipefail
cd "$(dirname "$0")"
vendor=static/vendor
if [ -f "$vendor/uPlot.iife.min.js" ] && [ "$vendor/uPlot.iife.min.js" -nt package-lock.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "console: npm is missing (Debian: apt-get install npm); the console needs uPlot" >&2
  exit 1
fi
npm ci --no-audit --no-fund --silent
mkdir -p "$vendor"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/"
cp node_modules/uplot/LICENSE "$vendor/uPlot.LICENSE"
echo "console: uPlot $(node -p "require('./node_modules/uplot/package.json').version") in $vendor"
