/*
 * Test PKI for the tls tests: tests/data/mkcerts.sh run once per test process into a throw-away
 * directory, removed again by tls_test_pki_remove(). Paths returned are static storage, valid until
 * the next call.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Generate the PKI. 0, or -1 when the script or openssl is missing (the caller skips). */
int tls_test_pki_create(void);
void tls_test_pki_remove(void);
/* "<dir>/<name>" */
const char *tls_test_pki_path(const char *name);
/* A second static slot, for a certificate and its key in one expression. */
const char *tls_test_pki_path2(const char *name);
/* DER of the first certificate in <dir>/<name>.pem into der (cap bytes). Length, or -1. */
int tls_test_pki_der(const char *name, uint8_t *der, size_t cap);
