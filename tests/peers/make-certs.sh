#!/usr/bin/env bash
# Makes the TLS files for the test SMTP peers: a test CA and a server certificate signed by it.
#   tests/peers/make-certs.sh OUTDIR
# writes OUTDIR/ca.pem (the root the client trusts), OUTDIR/leaf.pem and OUTDIR/leaf.key (what the
# server presents, for localhost and 127.0.0.1). rustls refuses a self-signed certificate that is
# also a CA as a server certificate, hence two certificates. EC P-256 keys, valid for 100 years.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=36500

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -x509 -new -sha256 -days "$days" -key "$work/ca.key" -out "$work/ca.pem" \
    -subj "/O=Messo tests/CN=Messo test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/leaf.key"  # PKCS#8 PEM
openssl req -new -sha256 -key "$work/leaf.key" -out "$work/leaf.csr" \
    -subj "/O=Messo tests/CN=localhost"
cat >"$work/leaf.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
openssl x509 -req -sha256 -days "$days" -in "$work/leaf.csr" \
    -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null

openssl verify -CAfile "$work/ca.pem" "$work/leaf.pem" >/dev/null \
    || { echo "make-certs: the leaf does not verify against the CA" >&2; exit 1; }
# The CA key is not needed once the leaf is signed, so it goes with the temp dir.
install -m 0644 "$work/ca.pem" "$out/ca.pem"
install -m 0644 "$work/leaf.pem" "$out/leaf.pem"
install -m 0600 "$work/leaf.key" "$out/leaf.key"
echo "make-certs: wrote $out/ca.pem, $out/leaf.pem, $out/leaf.key"
