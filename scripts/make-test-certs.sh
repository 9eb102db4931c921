#!/usr/bin/env bash
# Creates the TLS test certificates used by tests/unit/net (and the simulators'
# HTTPS tests). The outputs are committed to tests/fixtures/tls/, so tests never
# generate certificates at run time; rerun this only to replace them.
# The keys are for tests only: never deploy them.
#
# Usage: scripts/make-test-certs.sh [output-dir]   (default: tests/fixtures/tls)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${1:-${script_dir}/../tests/fixtures/tls}"
mkdir -p "${out_dir}"
cd "${out_dir}"

days=7300  # 20 years: the fixtures must not expire under the test suite
work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

make_ca() {  # name subject
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "${days}" \
    -keyout "$1.key" -out "$1.pem" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_leaf() {  # name subject extensions signing-ca
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" \
    -out "${work_dir}/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "${work_dir}/$1.ext"
  openssl x509 -req -in "${work_dir}/$1.csr" -CA "$4.pem" -CAkey "$4.key" \
    -CAcreateserial -CAserial "${work_dir}/$4.srl" -days "${days}" -sha256 \
    -extfile "${work_dir}/$1.ext" -out "$1.pem" 2>/dev/null
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth'

make_ca ca "/CN=kpihub test CA"
make_ca other-ca "/CN=kpihub unrelated test CA"
rm -f other-ca.key  # nothing is ever signed by it

make_leaf server "/CN=localhost" "${server_ext}
subjectAltName=IP:127.0.0.1,DNS:localhost" ca
make_leaf wrong-host "/CN=wrong.example" "${server_ext}
subjectAltName=DNS:wrong.example" ca
make_leaf client "/CN=kpihub test client" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth' ca

chmod 644 ./*.pem ./*.key
echo "test certificates written to $(pwd)"
