/*
 * Parse and serialize cost of core/xml + core/stanza per 400-byte s2s message stanza (perf.md §9:
 * a <message type='chat'> with a body and 3 namespaced children), against raw expat with no-op
 * handlers in the same run. Also: heap allocations per stanza after warm-up (a malloc counter
 * wrapping the process allocator, plus the parser's own accounting) and memory per parser.
 *
 * Times are the best thread-CPU time of 7 runs; ratios are the median of ratios between
 * neighbouring runs, so load on a shared machine affects both sides alike.
 *
 * Hibernation: memory of an idle parser trimmed (awake, the baseline) and hibernated, and the
 * cost of the wake-up the next stanza pays (stanza after xml_hibernate() against the same stanza
 * on an awake parser, and against creating a parser for a new stream), with its allocations.
 *
 * Usage: bench_xml [stanzas per run, default 200000]
 */
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/xml.h"

/* ---- a process-wide allocation counter (not under sanitizers, which own malloc) ---- */

static uint64_t g_allocs;

#ifndef FEDGATE_SANITIZE
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    __atomic_fetch_add(&g_allocs, 1, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    __atomic_fetch_add(&g_allocs, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    __atomic_fetch_add(&g_allocs, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#define COUNTING 1
#else
#define COUNTING 0
#endif

static const char header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='capulet.example' to='montague.example' version='1.0' xml:lang='en'>";

/* 400 bytes exactly once the body is padded. */
static void make_stanza(char *out, size_t want)
{
    const char *head = "<message from='juliet@capulet.example/balcony' to='romeo@montague.example' "
                       "type='chat' id='ktx72v49'><body>";
    const char *tail = "</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
                       "<request xmlns='urn:xmpp:receipts'/>"
                       "<origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4'/></message>";
    size_t hl = strlen(head), tl = strlen(tail);
    size_t pad = want - hl - tl;
    const char *words = "Art thou not Romeo, and a Montague? Neither, fair saint, if either "
                        "thee dislike. How camest thou hither, tell me, and wherefore? ";
    memcpy(out, head, hl);
    for (size_t i = 0; i < pad; i++)
        out[hl + i] = words[i % strlen(words)];
    memcpy(out + hl + pad, tail, tl + 1);
}

/* CPU time of this thread: on a shared machine, time spent descheduled does not count. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The input as a TCP reader would see it: the stanzas back to back, cut into `chunk`-byte reads. */
typedef struct {
    char *data;
    size_t len;
    size_t chunk;
    size_t stanzas;
} input_t;

/* ---- raw expat baseline ---- */

static void XMLCALL noop_start(void *ud, const XML_Char *n, const XML_Char **a)
{
}
static void XMLCALL noop_end(void *ud, const XML_Char *n)
{
}
static void XMLCALL noop_text(void *ud, const XML_Char *s, int len)
{
}

static double run_expat(const input_t *in)
{
    XML_Parser x = XML_ParserCreateNS("UTF-8", '\x01');
    XML_SetElementHandler(x, noop_start, noop_end);
    XML_SetCharacterDataHandler(x, noop_text);
    XML_SetReparseDeferralEnabled(x, XML_FALSE);
    XML_Parse(x, header, (int)strlen(header), XML_FALSE);
    double t0 = now();
    for (size_t off = 0; off < in->len; off += in->chunk) {
        size_t n = in->len - off < in->chunk ? in->len - off : in->chunk;
        if (XML_Parse(x, in->data + off, (int)n, XML_FALSE) != XML_STATUS_OK) {
            fprintf(stderr, "expat: %s\n", XML_ErrorString(XML_GetErrorCode(x)));
            exit(1);
        }
    }
    double t = now() - t0;
    XML_ParserFree(x);
    return t;
}

/* ---- fedgate ---- */

typedef struct {
    buf_t out;
    int serialize; /* 0: parse only, 1: stanza_write(), 2: copy the raw bytes when portable */
    size_t stanzas;
    size_t out_bytes;
} sink_t;

static int on_event(void *ctx, const xml_event_t *ev)
{
    sink_t *s = ctx;
    if (ev->type != XML_EV_STANZA)
        return XML_CB_CONTINUE;
    s->stanzas++;
    if (s->serialize) {
        buf_reset(&s->out);
        int ret = s->serialize == 2 && ev->raw_portable
                      ? buf_append(&s->out, ev->raw, ev->raw_len)
                      : stanza_write(&s->out, ev->el, &stanza_scope_s2s);
        if (ret < 0)
            exit(1);
        s->out_bytes += s->out.len;
    }
    return XML_CB_CONTINUE;
}

static double run_fedgate(const input_t *in, int serialize, uint64_t *allocs, uint64_t *own,
                          xml_stats_t *st)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    sink_t s = {.serialize = serialize};
    buf_init(&s.out, 1 << 16);
    xml_parser_t *p;
    if (xml_parser_new(&p, &lim, on_event, &s) < 0)
        exit(1);
    xml_set_max_stanza(p, lim.max_stanza_bytes);
    xml_feed(p, header, strlen(header), NULL);
    /* Warm-up: the arena, expat's pools and the output buffer reach their working size. */
    /* Warm-up on whole stanzas, in reads of the measured size, so the timed loop starts on a
       stanza boundary. */
    size_t sl = in->len / in->stanzas;
    size_t warm = (16 * in->chunk + sl - 1) / sl * sl;
    if (warm < 256 * sl)
        warm = 256 * sl;
    for (size_t off = 0; off < warm; off += in->chunk) {
        size_t n = warm - off < in->chunk ? warm - off : in->chunk;
        xml_feed(p, in->data + off, n, NULL);
    }
    xml_stats_t before;
    xml_stats(p, &before);
    uint64_t a0 = g_allocs;
    size_t st0 = s.stanzas;
    double t0 = now();
    for (size_t off = 0; off < in->len; off += in->chunk) {
        size_t n = in->len - off < in->chunk ? in->len - off : in->chunk;
        if (xml_feed(p, in->data + off, n, NULL) < 0) {
            fprintf(stderr, "xml_feed: %s\n", xml_error_detail(p));
            exit(1);
        }
    }
    double t = now() - t0;
    *allocs = g_allocs - a0;
    xml_stats(p, st);
    *own = st->mallocs - before.mallocs;
    if (s.stanzas - st0 != in->stanzas) {
        fprintf(stderr, "stanza count %zu != %zu\n", s.stanzas - st0, in->stanzas);
        exit(1);
    }
    xml_parser_free(p);
    buf_free(&s.out);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    char stanza[401];
    make_stanza(stanza, 400);
    size_t sl = strlen(stanza);
    input_t in = {.len = sl * n, .stanzas = n};
    in.data = malloc(in.len);
    for (size_t i = 0; i < n; i++)
        memcpy(in.data + i * sl, stanza, sl);

    printf("bench_xml: %zu stanzas of %zu bytes (message, body, 3 namespaced children)%s\n", n, sl,
           COUNTING ? "" : " [sanitizer build: no malloc counter]");
    size_t chunks[] = {4096, 400, 16384};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        in.chunk = chunks[c];
        /* Baseline and fedgate alternate, and each ratio comes from one pair of neighbouring
           runs, so load changes during the run affect both sides alike. */
        enum { RUNS = 7 };
        double base = 1e9, parse = 1e9, both = 1e9, fwd = 1e9, rp[RUNS], rb[RUNS], rr[RUNS];
        uint64_t allocs = 0, own = 0, allocs2 = 0, own2 = 0, allocs3 = 0, own3 = 0;
        xml_stats_t st;
        for (int r = 0; r < RUNS; r++) {
            double tb = run_expat(&in);
            double tp = run_fedgate(&in, 0, &allocs, &own, &st);
            double ts = run_fedgate(&in, 1, &allocs2, &own2, &st);
            double tr = run_fedgate(&in, 2, &allocs3, &own3, &st);
            rp[r] = tp / tb;
            rb[r] = ts / tb;
            rr[r] = tr / tb;
            base = tb < base ? tb : base;
            parse = tp < parse ? tp : parse;
            both = ts < both ? ts : both;
            fwd = tr < fwd ? tr : fwd;
        }
        double us = 1e6 / (double)n;
        printf("reads of %5zu B: expat no-op %.3f us/stanza (%.0f MB/s) | parse %.3f us (x%.2f) | "
               "parse+serialize %.3f us (x%.2f) | parse+raw copy %.3f us (x%.2f)\n",
               in.chunk, base * us, (double)in.len / base / 1e6, parse * us, median(rp, RUNS),
               both * us, median(rb, RUNS), fwd * us, median(rr, RUNS));
        printf("                  heap allocations after warm-up: %llu process-wide (%.4f per "
               "stanza), %llu by the parser; per-stanza target 0\n",
               (unsigned long long)(allocs + allocs2 + allocs3),
               (double)(allocs + allocs2 + allocs3) / (double)(3 * n),
               (unsigned long long)(own + own2 + own3));
    }

    /* Memory of one parser: idle after the header, and after traffic. */
    stream_limits_t lim;
    stream_limits_default(&lim);
    sink_t s = {0};
    buf_init(&s.out, 1 << 16);
    xml_parser_t *p;
    xml_parser_new(&p, &lim, on_event, &s);
    xml_stats_t st;
    xml_stats(p, &st);
    size_t created = st.bytes;
    xml_feed(p, header, strlen(header), NULL);
    xml_stats(p, &st);
    size_t after_header = st.bytes;
    for (int i = 0; i < 1000; i++)
        xml_feed(p, stanza, sl, NULL);
    xml_stats(p, &st);
    printf("memory per parser: %zu B created, %zu B after the stream header, %zu B after 1000 "
           "stanzas (%llu heap allocations in all)\n",
           created, after_header, st.bytes, (unsigned long long)st.mallocs);
    xml_trim(p);
    xml_stats(p, &st);
    size_t trimmed = st.bytes;
    if (!xml_hibernate(p)) {
        fprintf(stderr, "xml_hibernate refused on an idle stream\n");
        exit(1);
    }
    xml_stats(p, &st);
    printf("idle parser: %zu B trimmed and awake (baseline), %zu B hibernated (x%.2f)\n", trimmed,
           st.bytes, (double)st.bytes / (double)trimmed);

    /* Wake-up cost: one stanza after hibernating, against one stanza on an awake parser and
       against a new parser taking a stream header; alternating rounds, best of each. */
    enum { WAKES = 20000, WROUNDS = 5 };
    double t_awake = 1e9, t_wake = 1e9, t_new = 1e9;
    uint64_t wake_allocs = 0, wake_own = 0;
    for (int r = 0; r < WROUNDS; r++) {
        double t0 = now();
        for (int i = 0; i < WAKES; i++)
            if (xml_feed(p, stanza, sl, NULL) < 0)
                exit(1);
        double t = now() - t0;
        t_awake = t < t_awake ? t : t_awake;
        xml_stats_t w0, w1;
        xml_stats(p, &w0);
        uint64_t a0 = g_allocs;
        t0 = now();
        for (int i = 0; i < WAKES; i++) {
            if (!xml_hibernate(p) || xml_feed(p, stanza, sl, NULL) < 0)
                exit(1);
        }
        t = now() - t0;
        xml_stats(p, &w1);
        wake_allocs = g_allocs - a0;
        wake_own = w1.mallocs - w0.mallocs;
        if (w1.wakes - w0.wakes != WAKES)
            exit(1);
        t_wake = t < t_wake ? t : t_wake;
        t0 = now();
        for (int i = 0; i < WAKES / 10; i++) {
            xml_parser_t *q;
            if (xml_parser_new(&q, &lim, on_event, &s) < 0 ||
                xml_feed(q, header, strlen(header), NULL) < 0)
                exit(1);
            xml_parser_free(q);
        }
        t = (now() - t0) * 10;
        t_new = t < t_new ? t : t_new;
    }
    double us = 1e6 / WAKES;
    printf("wake-up: stanza on a hibernated parser %.3f us, on an awake one %.3f us: %.3f us per "
           "wake (%.1f allocations, %llu process-wide in %d); a new parser + header %.3f us\n",
           t_wake * us, t_awake * us, (t_wake - t_awake) * us, (double)wake_own / WAKES,
           (unsigned long long)wake_allocs, WAKES, t_new * us);
    xml_parser_free(p);
    buf_free(&s.out);
    free(in.data);
    return 0;
}
