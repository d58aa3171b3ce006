#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/err.h"
#include "tls/tls_conn.h"
#include "tls/tls_ctx.h"
#include "tls_test_pki.h"

static int have_pki;
static tls_ctx_t *server_ctx; /* hosts a.example (default), b.example, c.example, expired.example */
static tls_ctx_t *client_ctx; /* client certificates for every variant, by pseudo-domain */

static const char *const CLIENT_VARIANTS[] = {"b",      "c",     "wild",    "srv",    "xmpp",
                                              "noeku",  "wrong", "expired", "notyet", "selfsigned",
                                              "cnonly", "evil",  "revoked"};

static int with_crl = 1;

static int make_ctx(const char *const *names, const char *const *domains, size_t n, tls_ctx_t **out)
{
    tls_cred_config_t creds[16];
    static char paths[16][2][1024];
    for (size_t i = 0; i < n; i++) {
        snprintf(paths[i][0], sizeof paths[i][0], "%s.pem", tls_test_pki_path(names[i]));
        snprintf(paths[i][1], sizeof paths[i][1], "%s.key", tls_test_pki_path(names[i]));
        creds[i].domain = domains[i];
        creds[i].cert_file = paths[i][0];
        creds[i].key_file = paths[i][1];
    }
    char ca[1024], crl[1024];
    snprintf(ca, sizeof ca, "%s", tls_test_pki_path("ca.pem"));
    snprintf(crl, sizeof crl, "%s", tls_test_pki_path("crl"));
    tls_ctx_config_t cfg = {
        .ca_file = ca, .crl_path = with_crl ? crl : NULL, .creds = creds, .ncreds = n};
    return tls_ctx_new(&cfg, out);
}

/* Move every pending ciphertext byte of `from` into `to`, `chunk` bytes per feed. Returns bytes
 * moved. */
static size_t move(tls_conn_t *from, tls_conn_t *to, size_t chunk)
{
    size_t total = 0, len;
    const uint8_t *p;
    while ((p = tls_conn_peek_cipher(from, &len)) != NULL) {
        size_t n = len < chunk ? len : chunk;
        ssize_t r = tls_conn_feed_cipher(to, p, n);
        assert_true(r > 0);
        tls_conn_consume_cipher(from, (size_t)r);
        total += (size_t)r;
        /* Let the receiver consume as it goes, like the io loop does after each receive. */
        int h = tls_conn_handshake(to);
        if (h < 0)
            break;
    }
    return total;
}

/* Run the handshake between client and server to completion. 0 when both are established. */
static int pump(tls_conn_t *cl, tls_conn_t *sv, size_t chunk)
{
    for (int i = 0; i < 100000; i++) {
        int hc = tls_conn_handshake(cl), hs = tls_conn_handshake(sv);
        if (hc < 0 || hs < 0) {
            print_message("handshake: client '%s' server '%s'\n", tls_conn_error(cl),
                          tls_conn_error(sv));
            return FG_ETLS;
        }
        size_t moved = move(cl, sv, chunk) + move(sv, cl, chunk);
        if (hc == 1 && hs == 1 && moved == 0)
            return 0;
        if (moved == 0 && tls_conn_handshake(cl) != 1 && tls_conn_handshake(sv) != 1 && i > 0)
            return -1; /* stuck */
    }
    return -1;
}

/* Send msg from a to b and check it arrives intact. */
static void transfer(tls_conn_t *a, tls_conn_t *b, const char *msg, size_t chunk)
{
    char got[4096];
    size_t len = strlen(msg), have = 0;
    assert_int_equal(tls_conn_write_plain(a, msg, len), (ssize_t)len);
    size_t n;
    const uint8_t *p;
    while ((p = tls_conn_peek_cipher(a, &n)) != NULL) {
        size_t k = n < chunk ? n : chunk;
        ssize_t r = tls_conn_feed_cipher(b, p, k);
        assert_true(r > 0);
        tls_conn_consume_cipher(a, (size_t)r);
        ssize_t m;
        while ((m = tls_conn_read_plain(b, got + have, sizeof got - have)) > 0)
            have += (size_t)m;
        assert_true(m == 0);
    }
    assert_int_equal(have, len);
    assert_memory_equal(got, msg, len);
}

static void pair(const char *server_domain, const tls_conn_opts_t *copts, tls_conn_t **cl,
                 tls_conn_t **sv)
{
    tls_conn_opts_t so = {.local_domain = server_domain, .alpn_xmpp = 1};
    assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, sv), 0);
    assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, copts, cl), 0);
}

static void test_handshake_tls13(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    tls_conn_opts_t co = {.local_domain = "b"};
    pair("a.example", &co, &cl, &sv);
    assert_int_equal(tls_conn_state(sv), TLS_CONN_HANDSHAKE);
    assert_null(tls_conn_version(sv));
    assert_int_equal(tls_conn_write_plain(cl, "x", 1), FG_EPROTO);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_state(cl), TLS_CONN_OPEN);
    assert_int_equal(tls_conn_state(sv), TLS_CONN_OPEN);
    assert_string_equal(tls_conn_version(sv), "TLSv1.3");
    assert_string_equal(tls_conn_version(cl), "TLSv1.3");
    assert_string_equal(tls_conn_error_label(sv), "none");
    assert_string_equal(tls_conn_local_domain(sv), "a.example");
    /* Server sees the client's certificate (b.example), valid and matching. */
    const tls_peer_t *p = tls_conn_peer(sv);
    assert_int_equal(p->verify, TLS_VERIFY_OK);
    assert_string_equal(p->reason, "ok");
    assert_true(tls_identity_matches(&p->ids, "b.example"));
    assert_false(tls_identity_matches(&p->ids, "a.example"));
    /* Client sees the server's (a.example). */
    p = tls_conn_peer(cl);
    assert_int_equal(p->verify, TLS_VERIFY_OK);
    assert_true(tls_identity_matches(&p->ids, "a.example"));
    transfer(cl, sv, "<stream:stream to='a.example'>", 1 << 20);
    transfer(sv, cl, "<stream:stream from='a.example' id='x'>", 1 << 20);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

static void test_handshake_tls12(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    tls_conn_opts_t co = {.local_domain = "b", .version = TLS_VERSION_1_2};
    pair("a.example", &co, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_string_equal(tls_conn_version(sv), "TLSv1.2");
    assert_non_null(strstr(tls_conn_cipher(sv), "GCM"));
    assert_int_equal(tls_conn_peer(sv)->verify, TLS_VERIFY_OK);
    assert_true(tls_identity_matches(&tls_conn_peer(sv)->ids, "b.example"));
    assert_int_equal(tls_conn_peer(cl)->verify, TLS_VERIFY_OK);
    transfer(cl, sv, "<iq type='get'/>", 1 << 20);
    transfer(sv, cl, "<iq type='result'/>", 1 << 20);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* The certificate follows the stream's `to` among the hosted domains. */
static void test_cert_by_to(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    const char *doms[] = {"a.example", "b.example", "c.example"};
    for (int i = 0; i < 3; i++) {
        pair(doms[i], NULL, &cl, &sv);
        assert_int_equal(pump(cl, sv, 1 << 20), 0);
        const tls_peer_t *p = tls_conn_peer(cl);
        assert_int_equal(p->verify, TLS_VERIFY_OK); /* c.example chains via the intermediate */
        for (int j = 0; j < 3; j++)
            assert_int_equal(tls_identity_matches(&p->ids, doms[j]), i == j);
        assert_string_equal(tls_conn_local_domain(sv), doms[i]);
        /* The client offered no certificate. */
        assert_int_equal(tls_conn_peer(sv)->verify, TLS_VERIFY_NO_CERT);
        assert_int_equal(tls_conn_peer(sv)->ids.count, 0);
        tls_conn_free(cl);
        tls_conn_free(sv);
    }
    tls_conn_opts_t so = {.local_domain = "unknown.example"};
    assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv), FG_ENOTFOUND);
}

/* Direct TLS: no `to` yet, the ClientHello's SNI picks the certificate; ALPN xmpp-server. */
static void test_cert_by_sni_and_alpn(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    struct {
        const char *sni;
        const char *want;
    } cases[] = {{"b.example", "b.example"},
                 {"C.EXAMPLE", "c.example"},
                 {"unknown.example", "a.example"},
                 {NULL, "a.example"}};
    for (int i = 0; i < 4; i++) {
        tls_conn_opts_t co = {.sni = cases[i].sni, .alpn_xmpp = 1, .local_domain = "b"};
        pair(NULL, &co, &cl, &sv);
        assert_null(tls_conn_local_domain(sv));
        assert_int_equal(pump(cl, sv, 1 << 20), 0);
        assert_string_equal(tls_conn_local_domain(sv), cases[i].want);
        assert_true(tls_identity_matches(&tls_conn_peer(cl)->ids, cases[i].want));
        if (cases[i].sni)
            assert_string_equal(tls_conn_sni(sv), cases[i].sni);
        else
            assert_null(tls_conn_sni(sv));
        assert_string_equal(tls_conn_alpn(sv), "xmpp-server");
        assert_string_equal(tls_conn_alpn(cl), "xmpp-server");
        tls_conn_free(cl);
        tls_conn_free(sv);
    }
    /* A client without ALPN still connects; nothing is negotiated. */
    tls_conn_opts_t co = {.sni = "b.example"};
    pair(NULL, &co, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_null(tls_conn_alpn(sv));
    assert_null(tls_conn_alpn(cl));
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* The server's report on each kind of client certificate; the handshake always completes. */
static void test_peer_results(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    struct {
        const char *variant;
        tls_verify_t want;
        const char *matches;
        const char *not_matches;
    } cases[] = {
        {"b", TLS_VERIFY_OK, "b.example", "a.example"},
        {"c", TLS_VERIFY_OK, "c.example", NULL}, /* leaf + intermediate */
        {"wild", TLS_VERIFY_OK, "any.example", "example"},
        {"srv", TLS_VERIFY_OK, "srv.example", NULL},
        {"xmpp", TLS_VERIFY_OK, "xmpp.example", NULL},
        {"noeku", TLS_VERIFY_OK, "noeku.example", NULL}, /* clientAuth EKU not required */
        {"cnonly", TLS_VERIFY_OK, "cn.example", NULL},
        {"wrong", TLS_VERIFY_OK, "wrong.example", "b.example"},
        {"expired", TLS_VERIFY_EXPIRED, "expired.example", NULL},
        {"notyet", TLS_VERIFY_NOT_YET_VALID, "notyet.example", NULL},
        {"selfsigned", TLS_VERIFY_UNTRUSTED, "a.example", NULL},
        /* Twice: an intermediate a peer presented must not become trusted for the next one. */
        {"evil", TLS_VERIFY_UNTRUSTED, "evil.example", NULL},
        {"evil", TLS_VERIFY_UNTRUSTED, "evil.example", NULL},
        {"b", TLS_VERIFY_OK, "b.example", NULL},
        {"evil", TLS_VERIFY_UNTRUSTED, "evil.example", NULL},
        {"revoked", TLS_VERIFY_REVOKED, "revoked.example", NULL},
        {NULL, TLS_VERIFY_NO_CERT, NULL, "a.example"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tls_conn_opts_t co = {.local_domain = cases[i].variant};
        pair("a.example", &co, &cl, &sv);
        assert_int_equal(pump(cl, sv, 1 << 20), 0);
        const tls_peer_t *p = tls_conn_peer(sv);
        if (p->verify != cases[i].want)
            fail_msg("%s: verify %d (%s), want %d", cases[i].variant ? cases[i].variant : "none",
                     p->verify, p->reason, cases[i].want);
        assert_true(p->reason[0] != '\0');
        if (cases[i].matches) {
            assert_true(tls_identity_matches(&p->ids, cases[i].matches));
            assert_int_equal(tls_peer_authenticates(p, cases[i].matches),
                             cases[i].want == TLS_VERIFY_OK);
        }
        if (cases[i].not_matches)
            assert_false(tls_peer_authenticates(p, cases[i].not_matches));
        if (cases[i].not_matches)
            assert_false(tls_identity_matches(&p->ids, cases[i].not_matches));
        char line[256];
        tls_peer_describe(p, cases[i].matches ? cases[i].matches : "a.example", line, sizeof line);
        if (cases[i].want == TLS_VERIFY_OK)
            assert_string_equal(line, "ok");
        else
            assert_string_equal(line, p->reason);
        if (cases[i].not_matches && cases[i].want == TLS_VERIFY_OK) {
            tls_peer_describe(p, cases[i].not_matches, line, sizeof line);
            assert_non_null(strstr(line, "name mismatch"));
            assert_non_null(strstr(line, cases[i].not_matches));
        }
        transfer(sv, cl, "<stream:features/>", 1 << 20);
        tls_conn_free(cl);
        tls_conn_free(sv);
    }
}

/* The client's report on the server's certificate, and a client trusting nothing. */
static void test_server_cert_results(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    pair("expired.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_peer(cl)->verify, TLS_VERIFY_EXPIRED);
    assert_non_null(strstr(tls_conn_peer(cl)->reason, "expired"));
    assert_string_equal(tls_verify_label(tls_conn_peer(cl)->verify), "expired");
    tls_conn_free(cl);
    tls_conn_free(sv);

    tls_ctx_t *bare;
    tls_ctx_config_t cfg = {0};
    assert_int_equal(tls_ctx_new(&cfg, &bare), 0);
    tls_conn_opts_t so = {.local_domain = "a.example"};
    assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv), 0);
    assert_int_equal(tls_conn_new(bare, TLS_ROLE_CLIENT, NULL, &cl), 0);
    tls_ctx_unref(bare); /* the session keeps the context alive */
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_peer(cl)->verify, TLS_VERIFY_UNTRUSTED);
    assert_true(tls_identity_matches(&tls_conn_peer(cl)->ids, "a.example"));
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* Handshake and records with every ciphertext byte delivered on its own. */
static void test_one_byte_at_a_time(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    for (int v = 0; v < 2; v++) {
        tls_conn_opts_t co = {.local_domain = "b",
                              .version = v ? TLS_VERSION_1_2 : TLS_VERSION_ANY,
                              .sni = "c.example"};
        tls_conn_opts_t so = {0};
        assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv), 0);
        assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, &co, &cl), 0);
        assert_int_equal(pump(cl, sv, 1), 0);
        assert_string_equal(tls_conn_local_domain(sv), "c.example");
        assert_int_equal(tls_conn_peer(sv)->verify, TLS_VERIFY_OK);
        transfer(cl, sv, "<message to='x@c.example'><body>one byte at a time</body></message>", 1);
        transfer(sv, cl, "<message from='x@c.example'/>", 1);
        tls_conn_free(cl);
        tls_conn_free(sv);
    }
}

static void test_garbage(void **state)
{
    tls_conn_t *sv, *cl;
    uint8_t junk[600];
    char out[256];
    if (!have_pki)
        skip();
    srand(42);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rand();
    /* Garbage instead of a ClientHello: both with an SNI wait and a known domain. */
    for (int k = 0; k < 3; k++) {
        tls_conn_opts_t so = {.local_domain = k == 1 ? "a.example" : NULL};
        if (k == 2)
            junk[0] = 0x16; /* looks like a handshake record */
        assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv), 0);
        /* A random header may announce a long record: keep sending junk until it is refused,
         * which must happen within the largest record TLS allows. */
        ssize_t r = 0;
        size_t fed = 0;
        while (r == 0 && fed < 20 * 1024) {
            assert_true(tls_conn_feed_cipher(sv, junk, sizeof junk) > 0);
            fed += sizeof junk;
            r = tls_conn_read_plain(sv, out, sizeof out);
        }
        assert_int_equal(r, FG_ETLS);
        assert_int_equal(tls_conn_state(sv), TLS_CONN_FAILED);
        assert_true(tls_conn_error(sv)[0] != '\0');
        assert_string_not_equal(tls_conn_error_label(sv), "none");
        assert_int_equal(tls_conn_feed_cipher(sv, junk, 10), FG_ETLS);
        assert_int_equal(tls_conn_handshake(sv), FG_ETLS);
        tls_conn_free(sv);
    }
    /* Garbage after an established session: a forged record is a fatal error. */
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    uint8_t rec[64] = {0x17, 0x03, 0x03, 0x00, 59};
    memcpy(rec + 5, junk, sizeof rec - 5);
    assert_true(tls_conn_feed_cipher(sv, rec, sizeof rec) > 0);
    assert_int_equal(tls_conn_read_plain(sv, out, sizeof out), FG_ETLS);
    assert_string_equal(tls_conn_error_label(sv), "bad_record_mac");
    assert_int_equal(tls_conn_write_plain(sv, "x", 1), FG_ETLS);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* A peer that stops mid-handshake leaves both sides waiting, then freed cleanly. */
static void test_truncated_handshake(void **state)
{
    tls_conn_t *cl, *sv;
    char out[64];
    size_t n;
    if (!have_pki)
        skip();
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(tls_conn_handshake(cl), 0);
    const uint8_t *p = tls_conn_peek_cipher(cl, &n);
    assert_true(n > 50);
    assert_true(tls_conn_feed_cipher(sv, p, n / 2) > 0); /* half a ClientHello */
    assert_int_equal(tls_conn_handshake(sv), 0);
    assert_int_equal(tls_conn_read_plain(sv, out, sizeof out), 0);
    assert_int_equal(tls_conn_state(sv), TLS_CONN_HANDSHAKE);
    tls_conn_free(sv);
    tls_conn_free(cl);

    /* The whole ClientHello but only part of the server's answer. */
    pair(NULL, NULL, &cl, &sv);
    assert_int_equal(tls_conn_handshake(cl), 0);
    move(cl, sv, 1 << 20);
    assert_int_equal(tls_conn_handshake(sv), 0);
    p = tls_conn_peek_cipher(sv, &n);
    assert_true(n > 100);
    assert_true(tls_conn_feed_cipher(cl, p, n - 30) > 0);
    assert_int_equal(tls_conn_handshake(cl), 0);
    assert_int_equal(tls_conn_state(cl), TLS_CONN_HANDSHAKE);
    tls_conn_free(sv);
    tls_conn_free(cl);
}

/* A send in flight: the peeked bytes stay put while more ciphertext is produced, and partial
 * consumption delivers everything in order. */
static void test_inflight_view_stable(void **state)
{
    tls_conn_t *cl, *sv;
    static uint8_t copy[8192], wire[256 * 1024];
    char got[8192];
    if (!have_pki)
        skip();
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_write_plain(sv, "<first/>", 8), 8);
    size_t n, wire_len = 0;
    const uint8_t *view = tls_conn_peek_cipher(sv, &n);
    assert_non_null(view);
    memcpy(copy, view, n);
    /* Much more output while the "send" is in flight: the other buffer grows, the view does not. */
    static char big[3000];
    memset(big, 'y', sizeof big);
    for (int i = 0; i < 40; i++)
        assert_int_equal(tls_conn_write_plain(sv, big, sizeof big), (ssize_t)sizeof big);
    assert_memory_equal(view, copy, n);
    assert_true(tls_conn_cipher_pending(sv) > n);
    /* A short send: consume part, the rest of the same view is still there. */
    size_t part = n / 2;
    memcpy(wire, view, part);
    wire_len = part;
    tls_conn_consume_cipher(sv, part);
    size_t n2;
    const uint8_t *rest = tls_conn_peek_cipher(sv, &n2);
    assert_ptr_equal(rest, view + part);
    assert_int_equal(n2, n - part);
    wire_len += tls_conn_take_cipher(sv, wire + wire_len, sizeof wire - wire_len);
    assert_int_equal(tls_conn_cipher_pending(sv), 0);
    /* The client decrypts the whole sequence in order. */
    size_t have = 0, off = 0;
    ssize_t r;
    while (off < wire_len) {
        r = tls_conn_feed_cipher(cl, wire + off, wire_len - off);
        assert_true(r > 0);
        off += (size_t)r;
        while ((r = tls_conn_read_plain(cl, got, sizeof got)) > 0) {
            if (have == 0)
                assert_memory_equal(got, "<first/>", 8);
            have += (size_t)r;
        }
        assert_int_equal(r, 0);
    }
    assert_int_equal(have, 8 + 40 * sizeof big);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

static void test_close_notify(void **state)
{
    tls_conn_t *cl, *sv;
    char out[64];
    if (!have_pki)
        skip();
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_close(cl), 0);
    move(cl, sv, 1 << 20);
    assert_int_equal(tls_conn_read_plain(sv, out, sizeof out), 0);
    assert_int_equal(tls_conn_state(sv), TLS_CONN_CLOSED);
    assert_int_equal(tls_conn_close(sv), 0);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* Ciphertext nobody sends is bounded; writes fail with FG_ELIMIT, not memory growth. */
static void test_output_bound(void **state)
{
    tls_conn_t *cl, *sv;
    static char chunk[16000];
    if (!have_pki)
        skip();
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    memset(chunk, 'x', sizeof chunk);
    int writes = 0;
    ssize_t r;
    while ((r = tls_conn_write_plain(sv, chunk, sizeof chunk)) > 0)
        writes++;
    assert_int_equal(r, FG_ELIMIT);
    assert_true(writes >= 15);
    assert_true(tls_conn_cipher_pending(sv) <= TLS_CIPHER_OUT_MAX);
    assert_true(tls_conn_buffer_bytes(sv) < TLS_CIPHER_OUT_MAX + 128 * 1024);
    /* Drained: writable again, and the grown buffer is given back. */
    uint8_t sink[4096];
    while (tls_conn_take_cipher(sv, sink, sizeof sink) > 0)
        ;
    assert_true(tls_conn_buffer_bytes(sv) < 32 * 1024);
    assert_int_equal(tls_conn_write_plain(sv, chunk, 100), 100);
    /* Input is bounded too: feeding past TLS_CIPHER_IN_MAX accepts only what fits. */
    static uint8_t big[TLS_CIPHER_IN_MAX + 100];
    assert_int_equal(tls_conn_feed_cipher(cl, big, sizeof big), TLS_CIPHER_IN_MAX);
    assert_int_equal(tls_conn_feed_cipher(cl, big, 1), 0);
    tls_conn_free(cl);
    tls_conn_free(sv);
}

/* Certificates are replaced under a live session: it continues on the old one, new handshakes
 * get the new one. */
static void test_reload(void **state)
{
    tls_conn_t *cl, *sv_old, *cl2, *sv_new;
    if (!have_pki)
        skip();
    const char *names[] = {"a"}, *doms[] = {"a.example"};
    tls_ctx_t *current;
    assert_int_equal(make_ctx(names, doms, 1, &current), 0);
    assert_int_equal(tls_ctx_files_changed(current), 0);
    tls_conn_opts_t so = {.local_domain = "a.example"};
    assert_int_equal(tls_conn_new(current, TLS_ROLE_SERVER, &so, &sv_old), 0);
    assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, NULL, &cl), 0);
    assert_int_equal(pump(cl, sv_old, 1 << 20), 0);
    assert_int_equal(tls_conn_peer(cl)->ids.ids[0].type, TLS_ID_DNS);
    assert_string_equal(tls_conn_peer(cl)->ids.ids[0].name, "a.example");

    /* The operator replaces the file: the old context notices. */
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, tls_test_pki_path("a.pem"), ts, 0), 0);
    assert_int_equal(tls_ctx_files_changed(current), 1);

    /* Reload: a.example is now served with the wildcard certificate; publish and drop the old. */
    const char *names2[] = {"wild"};
    tls_ctx_t *next;
    assert_int_equal(make_ctx(names2, doms, 1, &next), 0);
    tls_ctx_unref(current);
    current = next;

    assert_int_equal(tls_conn_new(current, TLS_ROLE_SERVER, &so, &sv_new), 0);
    assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, NULL, &cl2), 0);
    assert_int_equal(pump(cl2, sv_new, 1 << 20), 0);
    assert_string_equal(tls_conn_peer(cl2)->ids.ids[0].name, "*.example");
    assert_true(tls_identity_matches(&tls_conn_peer(cl2)->ids, "a.example"));

    /* The old session still works both ways. */
    transfer(cl, sv_old, "<message>after reload</message>", 1 << 20);
    transfer(sv_old, cl, "<message>still here</message>", 7);
    tls_conn_free(cl);
    tls_conn_free(sv_old); /* frees the old context */
    tls_conn_free(cl2);
    tls_conn_free(sv_new);
    tls_ctx_unref(current);
}

/* Sessions of two workers share the contexts; each session stays on its thread. */
static void *worker(void *arg)
{
    long ok = 0;
    for (int i = 0; i < 40; i++) {
        tls_conn_t *cl, *sv;
        tls_conn_opts_t so = {0}, co = {.local_domain = "b", .sni = i % 2 ? "b.example" : NULL};
        if (tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv) < 0)
            continue;
        if (tls_conn_new(client_ctx, TLS_ROLE_CLIENT, &co, &cl) == 0) {
            if (pump(cl, sv, 1 << 20) == 0 && tls_conn_peer(sv)->verify == TLS_VERIFY_OK &&
                tls_conn_peer(cl)->verify == TLS_VERIFY_OK)
                ok++;
            tls_conn_free(cl);
        }
        tls_conn_free(sv);
    }
    return (void *)ok;
}

static void test_two_threads(void **state)
{
    pthread_t t[2];
    void *ok[2];
    if (!have_pki)
        skip();
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], &ok[i]), 0);
    assert_int_equal((long)ok[0], 40);
    assert_int_equal((long)ok[1], 40);
}

static void test_cipher_pin(void **state)
{
    tls_conn_t *cl, *sv;
    if (!have_pki)
        skip();
    tls_conn_opts_t co = {.ciphers = "TLS13-CHACHA20-POLY1305-SHA256"};
    pair("a.example", &co, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_string_equal(tls_conn_cipher(sv), "TLS13-CHACHA20-POLY1305-SHA256");
    transfer(cl, sv, "<presence/>", 3);
    tls_conn_free(cl);
    tls_conn_free(sv);
    /* Without a pin the AES-NI suite is preferred. */
    pair("a.example", NULL, &cl, &sv);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_string_equal(tls_conn_cipher(sv), "TLS13-AES128-GCM-SHA256");
    tls_conn_free(cl);
    tls_conn_free(sv);
    /* No suite in common: refused, and both sides report it. */
    tls_conn_opts_t cc = {.ciphers = "TLS13-CHACHA20-POLY1305-SHA256"};
    tls_conn_opts_t sc = {.local_domain = "a.example", .ciphers = "TLS13-AES128-GCM-SHA256"};
    assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, &cc, &cl), 0);
    assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &sc, &sv), 0);
    assert_int_equal(pump(cl, sv, 1 << 20), FG_ETLS);
    assert_int_equal(tls_conn_state(sv), TLS_CONN_FAILED);
    assert_true(tls_conn_error(sv)[0] != '\0');
    /* wolfSSL's server, finding no TLS 1.3 suite, falls back to a version check. */
    assert_true(strcmp(tls_conn_error_label(sv), "no_shared_cipher") == 0 ||
                strcmp(tls_conn_error_label(sv), "version") == 0);
    assert_string_equal(tls_conn_error_label(cl), "peer_alert");
    tls_conn_free(sv);
    tls_conn_free(cl);
}

/* Without a configured CRL nothing is checked for revocation; a CRL file works like a directory. */
static void test_crl_config(void **state)
{
    tls_conn_t *cl, *sv;
    tls_ctx_t *ctx;
    if (!have_pki)
        skip();
    const char *names[] = {"a"}, *doms[] = {"a.example"};
    with_crl = 0;
    assert_int_equal(make_ctx(names, doms, 1, &ctx), 0);
    with_crl = 1;
    tls_conn_opts_t so = {.local_domain = "a.example"}, co = {.local_domain = "revoked"};
    assert_int_equal(tls_conn_new(ctx, TLS_ROLE_SERVER, &so, &sv), 0);
    assert_int_equal(tls_conn_new(client_ctx, TLS_ROLE_CLIENT, &co, &cl), 0);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_peer(sv)->verify, TLS_VERIFY_OK);
    tls_conn_free(cl);
    tls_conn_free(sv);
    tls_ctx_unref(ctx);

    char ca[1024], crl[1024];
    snprintf(ca, sizeof ca, "%s", tls_test_pki_path("ca.pem"));
    snprintf(crl, sizeof crl, "%s", tls_test_pki_path("crl/ca-crl.pem"));
    tls_ctx_config_t cfg = {.ca_file = ca, .crl_path = crl};
    assert_int_equal(tls_ctx_new(&cfg, &ctx), 0);
    assert_int_equal(tls_conn_new(server_ctx, TLS_ROLE_SERVER, &so, &sv), 0);
    assert_int_equal(tls_conn_new(ctx, TLS_ROLE_CLIENT, NULL, &cl), 0);
    assert_int_equal(pump(cl, sv, 1 << 20), 0);
    assert_int_equal(tls_conn_peer(cl)->verify, TLS_VERIFY_OK);
    tls_conn_free(cl);
    tls_conn_free(sv);
    tls_ctx_unref(ctx);
    cfg.crl_path = ca; /* not a CRL */
    assert_int_equal(tls_ctx_new(&cfg, &ctx), FG_ETLS);
}

static void test_ctx_errors(void **state)
{
    tls_ctx_t *ctx = NULL;
    if (!have_pki)
        skip();
    char cert[1024], key[1024];
    snprintf(cert, sizeof cert, "%s", tls_test_pki_path("a.pem"));
    snprintf(key, sizeof key, "%s", tls_test_pki_path("b.key"));
    tls_cred_config_t mismatch = {"a.example", cert, key};
    tls_ctx_config_t cfg = {.creds = &mismatch, .ncreds = 1};
    assert_int_equal(tls_ctx_new(&cfg, &ctx), FG_ETLS);
    assert_null(ctx);

    tls_cred_config_t missing = {"a.example", "/nonexistent/a.pem", key};
    cfg.creds = &missing;
    assert_int_equal(tls_ctx_new(&cfg, &ctx), -ENOENT);

    const char *names[] = {"a", "b"}, *dup[] = {"a.example", "A.EXAMPLE"};
    assert_int_equal(make_ctx(names, dup, 2, &ctx), FG_ECONFLICT);

    tls_ctx_config_t badca = {.ca_file = cert + 0};
    snprintf(cert, sizeof cert, "%s", tls_test_pki_path("ca.cnf"));
    assert_int_equal(tls_ctx_new(&badca, &ctx), FG_ETLS);

    const char *doms[] = {"a.example", "b.example"};
    assert_int_equal(make_ctx(names, doms, 2, &ctx), 0);
    assert_int_equal(tls_ctx_domain_count(ctx), 2);
    assert_true(tls_ctx_has_domain(ctx, "B.example"));
    assert_false(tls_ctx_has_domain(ctx, "c.example"));
    tls_ctx_unref(ctx);
}

static int group_setup(void **state)
{
    if (tls_global_init(0) < 0)
        return -1;
    have_pki = tls_test_pki_create() == 0;
    if (!have_pki)
        return 0;
    const char *sn[] = {"a", "b", "c", "expired"};
    const char *sd[] = {"a.example", "b.example", "c.example", "expired.example"};
    if (make_ctx(sn, sd, 4, &server_ctx) < 0)
        return -1;
    size_t n = sizeof CLIENT_VARIANTS / sizeof CLIENT_VARIANTS[0];
    return make_ctx(CLIENT_VARIANTS, CLIENT_VARIANTS, n, &client_ctx) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    tls_ctx_unref(server_ctx);
    tls_ctx_unref(client_ctx);
    tls_test_pki_remove();
    tls_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13),
        cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_cert_by_to),
        cmocka_unit_test(test_cert_by_sni_and_alpn),
        cmocka_unit_test(test_peer_results),
        cmocka_unit_test(test_server_cert_results),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_truncated_handshake),
        cmocka_unit_test(test_inflight_view_stable),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_crl_config),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_cipher_pin),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
