/*
 * libFuzzer harness for core/xml: the input is an XMPP stream fed in chunks whose size comes from
 * the first byte, with the handler sometimes pausing; every stanza is written back out and
 * bounced, so the parser, the tree and the serializer all see hostile input.
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
} fz_t;

static int on_event(void *ctx, const xml_event_t *ev)
{
    fz_t *f = ctx;
    f->events++;
    if (ev->type == XML_EV_STANZA) {
        /* Touch every raw byte so a sanitizer sees any stale pointer. */
        unsigned sum = 0;
        for (size_t i = 0; i < ev->raw_len; i++)
            sum += (unsigned char)ev->raw[i];
        if (ev->raw_len != ev->bytes || (ev->raw_len && ev->raw[0] != '<') || sum == 1)
            abort();
        buf_reset(&f->out);
        (void)stanza_write(&f->out, ev->el, &stanza_scope_s2s);
        stanza_arena_reset(f->scratch);
        stanza_t *b = stanza_bounce(f->scratch, ev->el, "cancel", "service-unavailable", NULL);
        if (b)
            (void)stanza_write(&f->out, b, &stanza_scope_s2s);
    } else if (ev->type == XML_EV_STREAM_OPEN) {
        buf_reset(&f->out);
        (void)stanza_write_open(&f->out, ev->el, NULL);
    }
    return f->stop_every && f->events % f->stop_every == 0 ? XML_CB_STOP : XML_CB_CONTINUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = data[0] ? data[0] : size;
    unsigned flags = data[1];
    data += 2;
    size -= 2;

    stream_limits_t lim;
    stream_limits_default(&lim);
    fz_t f = {.stop_every = flags & 3};
    buf_init(&f.out, 1 << 20);
    if (stanza_arena_new(&f.scratch, 1 << 20) < 0)
        return 0;
    xml_parser_t *p = NULL;
    if (xml_parser_new(&p, &lim, on_event, &f) < 0)
        goto out;
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
        off += used;
        /* Every event covers at least one byte, so pausing cannot stall twice in a row. */
        idle = used == 0 ? idle + 1 : 0;
        if (idle > 2)
            abort();
    }
    (void)xml_error(p);
out:
    xml_parser_free(p);
    stanza_arena_free(f.scratch);
    buf_free(&f.out);
    return 0;
}
