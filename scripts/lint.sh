#!/usr/bin/env bash
# clang-tidy on the core, the adapters and the plugins (the checks in .clang-tidy), with the compile
# commands of BUILD_DIR. Fails on any finding in our code.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
[ -f "$BUILD_DIR/compile_commands.json" ] || { echo "lint: run a build into $BUILD_DIR first" >&2; exit 2; }
files=$(git ls-files 'core/*.cpp' 'adapters/*.cpp' 'plugins/*.cpp')
out=$(mktemp)
# -j2 by xargs: the machine has two cores.
printf '%s\n' $files | xargs -P 2 -n 4 clang-tidy -p "$BUILD_DIR" --quiet >"$out" 2>/dev/null || true
if grep -E "^/.*(warning|error):" "$out" | grep -v "^/usr/" >/dev/null; then
  grep -E -A3 "^/.*(warning|error):" "$out" | grep -v "^/usr/"
  echo "lint: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "lint: clang-tidy clean on $(echo $files | wc -w) files of core, adapters and plugins"
# The admin API's OpenAPI description against the OpenAPI 3.0 schema. The validator is not a
# Debian 12 package: it runs where Python has it (this project's machines do); everywhere the
# document is checked against the real endpoints (AdminApiTest.TheOpenApiDocumentDescribesEveryEndpoint).
if python3 -c "import openapi_spec_validator" 2>/dev/null; then
  python3 - <<'PY'
import json, sys
from openapi_spec_validator import validate_spec
with open("docs/openapi.json") as f:
    doc = json.load(f)
validate_spec(doc)
print(f"lint: docs/openapi.json is a valid OpenAPI {doc['openapi']} document ({len(doc['paths'])} paths)")
PY
else
  echo "lint: openapi-spec-validator not installed (no Debian 12 package): docs/openapi.json checked against the endpoints only"
fi
