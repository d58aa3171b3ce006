/*
 * Fuzz harness for the store's record decoder (and the JSON that import reads): whatever the
 * bytes, decoding must not crash, read out of bounds or accept a record that does not re-encode
 * to an equal one. Input starting with '{' or '[' goes through the JSON tokenizer and the
 * schema-driven object decoder instead.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/hosted.h"
#include "policy/json.h"
#include "policy/partner.h"
#include "policy/schema.h"
#include "policy/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const schema_t *s, const uint8_t *data, size_t size)
{
    void *a = malloc(s->struct_size), *b = malloc(s->struct_size);
    uint8_t *enc = malloc(SCHEMA_RECORD_MAX);
    size_t len;
    if (!a || !b || !enc)
        goto out;
    if (schema_decode(s, data, size, a) != 0)
        goto out;
    /* accepted: it must re-encode and decode to the same value */
    if (schema_encode(s, a, enc, SCHEMA_RECORD_MAX, &len) != 0)
        abort();
    if (schema_decode(s, enc, len, b) != 0 || !schema_equal(s, a, b))
        abort();
    report_t rep;
    report_init(&rep, 16);
    schema_check(s, a, &rep);
    report_free(&rep);
out:
    free(a);
    free(b);
    free(enc);
}

static void check_json(const uint8_t *data, size_t size)
{
    json_tok_t tok[512];
    json_doc_t d;
    if (json_parse(&d, (const char *)data, size, tok, 512) != 0)
        return;
    partner_t *p = malloc(sizeof(*p));
    if (!p)
        return;
    report_t rep;
    report_init(&rep, 32);
    int t = d.tok[0].type == JSON_ARRAY ? json_child(&d, 0, 0) : 0;
    partner_defaults(p);
    if (t >= 0 && json_decode_object(&schema_partner, &d, t, p, &rep) == 0)
        partner_validate(p, 1000, &rep);
    report_free(&rep);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] == '{' || data[0] == '[')) {
        check_json(data, size);
        return 0;
    }
    check_record(&schema_partner, data, size);
    check_record(&schema_settings, data, size);
    check_record(&schema_hosted, data, size);
    return 0;
}
