#!/bin/sh
# Generates the throw-away test PKI for the tls tests and benchmark into the folder given as $1.
# Nothing here is secret: every key is created fresh at test time and never committed.
#
#   ca.pem / ca.key            EC P-256 test root CA (the trust anchor)
#   crl/ca-crl.pem             the root's CRL (revokes `revoked`)
#   int.pem / int.key          intermediate CA signed by the root
#   <name>.pem / <name>.key    leaf certificates (EC P-256, EKU serverAuth+clientAuth):
#     a          SAN DNS:a.example
#     b          SAN DNS:b.example
#     c          SAN DNS:c.example, issued by the intermediate; c.pem holds leaf + intermediate
#     wild       SAN DNS:*.example
#     srv        SAN otherName SRVName _xmpp-server.srv.example (no dNSName)
#     xmpp       SAN otherName id-on-xmppAddr xmpp.example (no dNSName)
#     sancn      SAN DNS:san.example and subject CN=cn-ignored.example
#     cnonly     no SAN at all, subject CN=cn.example
#     expired    SAN DNS:expired.example, valid 2020-2021
#     notyet     SAN DNS:notyet.example, valid from 2099
#     selfsigned SAN DNS:a.example, self-signed (not under the test CA)
#     noeku      SAN DNS:noeku.example, EKU serverAuth only (clientAuth must not be required)
#     wrong      SAN DNS:wrong.example
#     revoked    SAN DNS:revoked.example, revoked in crl/ca-crl.pem (the root's CRL)
#     evil       SAN DNS:evil.example, issued by an intermediate of an untrusted root; evil.pem holds
#                leaf + that intermediate (a peer must not make its CA trusted by presenting it)
set -eu
out=${1:?usage: mkcerts.sh OUTDIR}
mkdir -p "$out"
cd "$out"

ossl() { openssl "$@" 2>/dev/null; }
genkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

cat > ca.cnf <<'EOF'
[ca]
default_ca = testca
[testca]
dir = .
database = ./index.txt
serial = ./serial
new_certs_dir = ./issued
crlnumber = ./crlnumber
default_crl_days = 30
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
default_days = 3650
[anything]
commonName = optional
organizationName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
O = fedgate test
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf_base]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[a]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:a.example
[b]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:b.example
[c]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:c.example
[wild]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:*.example
[srv]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.srv.example
[xmpp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = otherName:1.3.6.1.5.5.7.8.5;UTF8:xmpp.example
[sancn]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:san.example
[cnonly]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
[expired]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:expired.example
[notyet]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:notyet.example
[selfsigned]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:a.example
[noeku]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:noeku.example
[evil]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:evil.example
[revoked]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:revoked.example
[wrong]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:wrong.example
EOF
rm -rf issued crl index.txt* serial* crlnumber*
mkdir issued
: > index.txt
echo 1000 > serial
echo 1000 > crlnumber

genkey ca
ossl req -new -x509 -config ca.cnf -key ca.key -out ca.pem -days 3650 -subj "/O=fedgate test/CN=fedgate test root" \
    -extensions v3_ca

# Intermediate CA, signed by the root.
genkey int
ossl req -new -config ca.cnf -key int.key -out int.csr -subj "/O=fedgate test/CN=fedgate test intermediate"
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in int.csr -out int.pem -notext \
    -extfile ca.cnf -extensions v3_ca -days 3650

# leaf NAME SUBJECT ISSUER [ca options...]
leaf() {
    n=$1 subj=$2 issuer=$3
    shift 3
    genkey "$n"
    ossl req -new -config ca.cnf -key "$n.key" -out "$n.csr" -subj "$subj"
    ossl ca -batch -config ca.cnf -cert "$issuer.pem" -keyfile "$issuer.key" -in "$n.csr" \
        -out "$n.pem" -notext -extfile ca.cnf -extensions "$n" "$@"
}
for n in a b wild srv xmpp noeku wrong revoked; do
    leaf $n "/O=fedgate test" ca -days 825
done
leaf sancn "/O=fedgate test/CN=cn-ignored.example" ca -days 825
leaf cnonly "/O=fedgate test/CN=cn.example" ca -days 825
leaf expired "/O=fedgate test" ca -startdate 20200101000000Z -enddate 20210101000000Z
leaf notyet "/O=fedgate test" ca -startdate 20990101000000Z -enddate 21000101000000Z
leaf c "/O=fedgate test" int -days 825
mkdir -p crl
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -revoke revoked.pem
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -out crl/ca-crl.pem
cat int.pem >> c.pem

# An untrusted root with its own intermediate.
genkey evilroot
ossl req -new -x509 -config ca.cnf -key evilroot.key -out evilroot.pem -days 3650 \
    -subj "/O=fedgate test/CN=untrusted root" -extensions v3_ca
genkey evilint
ossl req -new -config ca.cnf -key evilint.key -out evilint.csr -subj "/O=fedgate test/CN=untrusted intermediate"
ossl ca -batch -config ca.cnf -cert evilroot.pem -keyfile evilroot.key -in evilint.csr -out evilint.pem \
    -notext -extfile ca.cnf -extensions v3_ca -days 3650
leaf evil "/O=fedgate test" evilint -days 825
cat evilint.pem >> evil.pem

genkey selfsigned
ossl req -new -x509 -config ca.cnf -key selfsigned.key -out selfsigned.pem -days 825 \
    -subj "/O=fedgate test/CN=a.example" -extensions selfsigned

rm -f ./*.csr
echo "$out"
