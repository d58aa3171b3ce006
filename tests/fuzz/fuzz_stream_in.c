/*
 * libFuzzer target over the receiving state machine (core/stream.h, STREAM_IN) and, through the
 * same input, the parser under it. Input layout: byte 0 selects the partner rules and the
 * certificate verdict, byte 1 the feeding chunk size, the rest is what the peer sends. Every event
 * the engine waits for is answered at once (policy allow, TLS up, verify result alternating valid
 * and invalid), so the fuzzer reaches the authenticated states; then virtual time runs past every
 * timer. The seeds in fuzz_stream_in.in/ are the inputs of tests/replay/transcripts/in_*.txt.
 */
#include "core/peer.h"
#include "core/stream.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void rnd(void *ctx, uint8_t *out, size_t n)
{
    uint32_t *x = ctx;
    for (size_t i = 0; i < n; i++) {
        *x = *x * 1103515245u + 12345u;
        out[i] = (uint8_t)(*x >> 16);
    }
}

static const char *const hosted[] = {"capulet.example", "bot.capulet.example"};

/* Answer what the engine asks for; false once the stream is closed. */
static bool drain(stream_t *s, uint8_t sel, unsigned *verifies)
{
    stream_action_t a;
    bool open = true;
    while (stream_next_action(s, &a)) {
        char d1[300], d2[300], id[200];
        switch (a.type) {
        case STREAM_ACT_NEED_POLICY: {
            peer_rules_t r = {.tls = (negotiation_t)(sel % 3),
                              .sasl = (negotiation_t)((sel / 3) % 3),
                              .dialback = (sel & 0x20) == 0,
                              .keepalive = true};
            snprintf(d1, sizeof(d1), "%s", a.domain);
            /* refuse one domain so the refusal paths are reachable too */
            stream_policy(s, d1, strcmp(d1, "evil.example") != 0, &r);
            break;
        }
        case STREAM_ACT_START_TLS: {
            const char *names[] = {"montague.example", "*.verona.example"};
            stream_tls_up(s, names, 2, (sel & 0x40) == 0, 2000);
            break;
        }
        case STREAM_ACT_VERIFY:
            snprintf(d1, sizeof(d1), "%s", a.from);
            snprintf(d2, sizeof(d2), "%s", a.to);
            snprintf(id, sizeof(id), "%s", a.id);
            stream_verify_result(s, d1, d2, id, (stream_verify_t)((*verifies)++ % 3),
                                 "remote-connection-failed");
            break;
        case STREAM_ACT_STANZA:
            /* bidi replies exercise stream_send on a receiving stream */
            if (sel & 0x80)
                stream_send(s, "juliet@capulet.example", "romeo@montague.example", "<message/>",
                            10);
            break;
        case STREAM_ACT_CLOSE:
            open = false;
            break;
        default:
            break;
        }
    }
    return open && stream_state(s) != STREAM_S_CLOSED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;

    uint32_t seed = 42;
    unsigned verifies = 0;
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.kind = STREAM_IN;
    cfg.hosted = hosted;
    cfg.n_hosted = 2;
    cfg.secret = (const uint8_t *)"s3cr3t";
    cfg.secret_len = 6;
    cfg.random = rnd;
    cfg.random_ctx = &seed;
    cfg.dialback_cert_skip = (sel & 0x10) != 0;
    cfg.limits.max_domain_pairs = 4;
    cfg.now_ms = 1000;
    stream_t *s = NULL;
    if (stream_new(&s, &cfg) != 0)
        return 0;
    size_t off = 0;
    uint64_t now = 1000;
    bool open = true;
    for (int guard = 0; open && off < size && guard < 1000000; guard++) {
        size_t n = size - off < chunk ? size - off : chunk;
        int c = stream_feed(s, data + off, n, now++);
        if (c < 0)
            break;
        off += (size_t)c;
        open = drain(s, sel, &verifies);
        if (c == 0 && open) {
            /* waiting for an event nobody sends (should not happen with drain answering) */
            break;
        }
    }
    for (int i = 0; open && i < 8; i++) {
        now += 400000;
        stream_tick(s, now);
        open = drain(s, sel, &verifies);
    }
    stream_free(s);
    return 0;
}
