/*
 * libFuzzer harness for core/xml: the input is an XMPP stream fed in chunks whose size comes from
 * the first byte, with the handler sometimes pausing; every stanza is written back out and
 * bounced, so the parser, the tree and the serializer all see hostile input. With flag 32 the
 * stream is parsed twice, with a private expat instance and with instances lent by a pool that a
 * second parser (another header, binding the same prefixes to other namespaces) takes turns on;
 * both runs must see the same events, bytes and trees.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    buf_t out;
    stanza_arena_t *scratch;
    unsigned events;
    unsigned stop_every;
    uint64_t hash; /* FNV-1a over every event's type, byte count, raw bytes and written tree */
} fz_t;

static void mix(fz_t *f, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        f->hash = (f->hash ^ c[i]) * 1099511628211ull;
}

static int on_event(void *ctx, const xml_event_t *ev)
{
    fz_t *f = ctx;
    f->events++;
    mix(f, &ev->type, sizeof(ev->type));
    mix(f, &ev->bytes, sizeof(ev->bytes));
    if (ev->type == XML_EV_STANZA) {
        /* Touch every raw byte so a sanitizer sees any stale pointer. */
        unsigned sum = 0;
        for (size_t i = 0; i < ev->raw_len; i++)
            sum += (unsigned char)ev->raw[i];
        if (ev->raw_len != ev->bytes || (ev->raw_len && ev->raw[0] != '<') || sum == 1)
            abort();
        mix(f, ev->raw, ev->raw_len);
        mix(f, &ev->raw_portable, sizeof(ev->raw_portable));
        buf_reset(&f->out);
        (void)stanza_write(&f->out, ev->el, &stanza_scope_s2s);
        mix(f, f->out.data, f->out.len);
        stanza_arena_reset(f->scratch);
        stanza_t *b = stanza_bounce(f->scratch, ev->el, "cancel", "service-unavailable", NULL);
        if (b)
            (void)stanza_write(&f->out, b, &stanza_scope_s2s);
    } else if (ev->type == XML_EV_STREAM_OPEN) {
        buf_reset(&f->out);
        (void)stanza_write_open(&f->out, ev->el, NULL);
        mix(f, f->out.data, f->out.len);
    }
    return f->stop_every && f->events % f->stop_every == 0 ? XML_CB_STOP : XML_CB_CONTINUE;
}

static int lender_event(void *ctx, const xml_event_t *ev)
{
    (void)ctx;
    (void)ev;
    return XML_CB_CONTINUE;
}

static const char lender_doc[] =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns:db='urn:x' xmlns:x='urn:y'><message><x:a/></message><presence/> ";

/* One parse of the stream; the event hash and the final error go to *f and *reason. */
static void run(const uint8_t *data, size_t size, size_t chunk, unsigned flags, bool pooled,
                fz_t *f, xml_reason_t *reason)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    xml_parser_t *p = NULL, *q = NULL;
    xml_pool_t *pool = NULL;
    size_t qoff = 0;
    f->hash = 14695981039346656037ull;
    f->events = 0;
    *reason = XML_REASON_NONE;
    if (xml_parser_new(&p, &lim, on_event, f) < 0)
        goto out;
    if (pooled &&
        (xml_pool_new(&pool, 2, 0) < 0 || xml_parser_new(&q, &lim, lender_event, NULL) < 0))
        goto out;
    xml_set_pool(p, pool);
    if (q)
        xml_set_pool(q, pool);
    if (flags & 4)
        xml_set_max_stanza(p, lim.max_stanza_bytes);
    size_t off = 0;
    int idle = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t used = 0;
        if (xml_feed(p, data + off, n, &used) < 0)
            break;
        if (used > n)
            abort();
        /* After a pause, either restart the stream (a STARTTLS/SASL restart) or continue it with
           the unconsumed bytes at the front of the next call. */
        if (used < n && (flags & 8))
            xml_reset(p);
        if (flags & 16)
            xml_trim(p);
        if (q) {
            /* Parking is granted exactly when the parser rests: a parked parser holds nothing. */
            if (xml_park(p) != xml_hibernating(p))
                abort();
            size_t m = sizeof(lender_doc) - 1 - qoff < 11 ? sizeof(lender_doc) - 1 - qoff : 11;
            if (xml_feed(q, lender_doc + qoff, m, NULL) < 0)
                abort();
            qoff += m;
            if (qoff == sizeof(lender_doc) - 1) {
                xml_reset(q);
                qoff = 0;
            }
            xml_park(q);
        }
        off += used;
        /* Every event covers at least one byte, so pausing cannot stall twice in a row. */
        idle = used == 0 ? idle + 1 : 0;
        if (idle > 2)
            abort();
    }
    *reason = xml_error(p);
out:
    xml_parser_free(p);
    xml_parser_free(q);
    xml_pool_free(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = data[0] ? data[0] : size;
    unsigned flags = data[1];
    data += 2;
    size -= 2;

    fz_t f = {.stop_every = flags & 3};
    buf_init(&f.out, 1 << 20);
    if (stanza_arena_new(&f.scratch, 1 << 20) < 0)
        goto out;
    xml_reason_t r1, r2;
    run(data, size, chunk, flags, false, &f, &r1);
    if (flags & 32) {
        uint64_t h1 = f.hash;
        unsigned e1 = f.events;
        run(data, size, chunk, flags, true, &f, &r2);
        if (f.hash != h1 || f.events != e1 || r1 != r2)
            abort();
    }
out:
    stanza_arena_free(f.scratch);
    buf_free(&f.out);
    return 0;
}
