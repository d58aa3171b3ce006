/*
 * Allocation failure injection for core/xml (with core/stanza and core/buf underneath): a stream
 * transcript is run once per allocation, with that allocation failing. Every run must either
 * produce the same events as the clean run or stop with a clean error, and free everything
 * (the sanitizer build checks the latter).
 *
 * The modules are compiled into this test with malloc/calloc/realloc renamed, so the failures
 * reach every allocation they make, expat's included (it allocates through the parser's suite).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static long g_fail_at = -1; /* index of the allocation to fail; -1 = none */
static bool g_hibernate;    /* hibernate the parser after every read (wake-ups fail too) */
static long g_count;

static bool should_fail(void)
{
    return g_count++ == g_fail_at;
}

static void *t_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *t_calloc(size_t n, size_t m)
{
    return should_fail() ? NULL : calloc(n, m);
}

static void *t_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

/* cmocka's fail() macro would clash with xml.c's fail(). */
#undef fail
#define malloc  t_malloc
#define calloc  t_calloc
#define realloc t_realloc
#include "core/buf.c"
#include "core/stanza.c"
#include "core/xml.c"
#undef malloc
#undef calloc
#undef realloc

static const char transcript[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='capulet.example' to='montague.example' version='1.0'>"
    "<db:result from='capulet.example' to='montague.example'>abcdef</db:result>"
    "<message from='a@capulet.example' to='b@montague.example' type='chat'><body>hello "
    "there</body><x xmlns='urn:x' a='1'><y>text</y></x></message>"
    "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>";

typedef struct {
    char log[4096];
    size_t len;
} log_t;

static int on_event(void *ctx, const xml_event_t *ev)
{
    log_t *l = ctx;
    int n = snprintf(l->log + l->len, sizeof(l->log) - l->len, "%d:%s:%zu;", (int)ev->type,
                     ev->el ? stanza_name(ev->el) : "-", ev->bytes);
    if (n > 0)
        l->len += (size_t)n;
    /* Exercise the stanza copy paths under failure as well. */
    if (ev->type == XML_EV_STANZA) {
        stanza_arena_t *a = NULL;
        if (stanza_arena_new(&a, 1 << 16) == 0) {
            (void)stanza_clone(a, ev->el);
            stanza_arena_free(a);
        }
    }
    return XML_CB_CONTINUE;
}

/* Run the transcript in `chunk`-byte reads; returns 0, or the error that stopped it. */
static int run(size_t chunk, log_t *l)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    memset(l, 0, sizeof(*l));
    xml_parser_t *p = NULL;
    int ret = xml_parser_new(&p, &lim, on_event, l);
    if (ret < 0)
        return ret;
    size_t len = strlen(transcript);
    for (size_t off = 0; off < len && ret == 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ret = xml_feed(p, transcript + off, n, NULL);
        if (g_hibernate)
            (void)xml_hibernate(p);
    }
    if (ret == 0)
        ret = xml_reset(p);
    xml_parser_free(p);
    return ret;
}

static void inject_all(size_t chunk)
{
    log_t clean, got;
    g_fail_at = -1;
    g_count = 0;
    assert_int_equal(run(chunk, &clean), 0);
    long total = g_count;
    assert_true(total > 5);
    int failures = 0;
    for (long i = 0; i < total; i++) {
        g_fail_at = i;
        g_count = 0;
        int ret = run(chunk, &got);
        if (ret == 0) {
            /* A failure that was absorbed must not change what was parsed. */
            assert_string_equal(got.log, clean.log);
        } else {
            /* expat reports some failed allocations as what they broke (a namespace binding it
               could not store is an "unbound prefix"), so a parse error is clean too. */
            if (ret != -ENOMEM && ret != FG_EPARSE)
                print_error("allocation %ld: error %d\n", i, ret);
            assert_true(ret == -ENOMEM || ret == FG_EPARSE);
            /* Whatever was reported before the failure is a prefix of the clean run. */
            assert_memory_equal(got.log, clean.log, got.len);
            failures++;
        }
    }
    g_fail_at = -1;
    assert_true(failures > 0);
}

static void test_alloc_failures_whole(void **state)
{
    inject_all(sizeof(transcript));
}

static void test_alloc_failures_small_reads(void **state)
{
    inject_all(7);
}

static void test_alloc_failures_one_byte(void **state)
{
    inject_all(1);
}

static void test_alloc_failures_hibernating(void **state)
{
    /* Every read that ends between stanzas hibernates the parser (with one-byte reads, after
       every stanza), so each allocation of each wake-up fails in turn. */
    g_hibernate = true;
    inject_all(7);
    inject_all(1);
    g_hibernate = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_failures_whole),
        cmocka_unit_test(test_alloc_failures_small_reads),
        cmocka_unit_test(test_alloc_failures_one_byte),
        cmocka_unit_test(test_alloc_failures_hibernating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
