/*
 * libFuzzer harness for the stanza serializer: every stanza parsed from the input (placed after a
 * fixed s2s stream header) is written out, parsed again and written again; the two writings must
 * be identical, and a clone must write the same bytes. A difference aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char header[] =
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns:db='jabber:server:dialback' to='a.example' from='b.example' version='1.0'>";

typedef struct {
    buf_t first, second;
    stanza_arena_t *clone;
    int phase; /* 0: parsing the input, 1: parsing our own output */
    int count;
} rt_t;

static int on_event(void *ctx, const xml_event_t *ev);

/* Parse `len` bytes after the header (with room for the escapes and declarations writing may
   add); the one stanza must write exactly `want`. */
static void reparse_check(const void *data, size_t len, const buf_t *want)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    lim.max_stanza_bytes_preauth = 1 << 22;
    lim.max_buffered_bytes = 1 << 22;
    lim.max_attrs = 4096;
    rt_t inner = {.phase = 1};
    buf_init(&inner.second, 1 << 22);
    xml_parser_t *p;
    if (xml_parser_new(&p, &lim, on_event, &inner) < 0)
        abort();
    if (xml_feed(p, header, sizeof(header) - 1, NULL) < 0 || xml_feed(p, data, len, NULL) < 0 ||
        inner.count != 1 || inner.second.len != want->len ||
        memcmp(inner.second.data, want->data, want->len) != 0)
        abort();
    xml_parser_free(p);
    buf_free(&inner.second);
}

static int on_event(void *ctx, const xml_event_t *ev)
{
    rt_t *r = ctx;
    if (ev->type != XML_EV_STANZA)
        return XML_CB_CONTINUE;
    r->count++;
    if (r->phase == 1) {
        buf_reset(&r->second);
        if (stanza_write(&r->second, ev->el, &stanza_scope_s2s) < 0)
            abort();
        return XML_CB_CONTINUE;
    }
    buf_reset(&r->first);
    if (stanza_write(&r->first, ev->el, &stanza_scope_s2s) < 0)
        return XML_CB_CONTINUE;
    stanza_arena_reset(r->clone);
    stanza_t *c = stanza_clone(r->clone, ev->el);
    if (c) {
        buf_t b;
        buf_init(&b, 1 << 22);
        if (stanza_write(&b, c, &stanza_scope_s2s) < 0 || b.len != r->first.len ||
            memcmp(b.data, r->first.data, b.len) != 0)
            abort();
        buf_free(&b);
    }

    /* Parse what we wrote, and the raw bytes as received, in the same namespace context: both
       must write back the same bytes. */
    reparse_check(r->first.data, r->first.len, &r->first);
    if (!ev->raw || ev->raw_len != ev->bytes)
        abort();
    reparse_check(ev->raw, ev->raw_len, &r->first);
    return XML_CB_CONTINUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    rt_t r = {0};
    buf_init(&r.first, 1 << 22);
    if (stanza_arena_new(&r.clone, 1 << 22) < 0)
        return 0;
    xml_parser_t *p = NULL;
    if (xml_parser_new(&p, &lim, on_event, &r) == 0) {
        xml_set_max_stanza(p, lim.max_stanza_bytes);
        if (xml_feed(p, header, sizeof(header) - 1, NULL) == 0)
            (void)xml_feed(p, data, size, NULL);
    }
    xml_parser_free(p);
    stanza_arena_free(r.clone);
    buf_free(&r.first);
    return 0;
}
