/*
 * libFuzzer harness for core/jid: any input either fails to parse or yields parts that are within
 * the limits, lie inside the input, and survive jid_bare() and a reparse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    jid_t j;
    if (jid_parse(s, size, &j) != 0)
        return 0;
    if (j.domain < s || j.domain + j.domain_len > s + size || j.domain_len == 0 ||
        j.domain_len > JID_PART_MAX)
        abort();
    if (j.local && (j.local_len == 0 || j.local_len > JID_PART_MAX))
        abort();
    if (j.resource && (j.resource_len == 0 || j.resource_len > JID_PART_MAX))
        abort();
    if (!jid_domain_equal(j.domain, j.domain_len, j.domain, j.domain_len))
        abort();
    if (jid_domain_check(j.domain, j.domain_len) != 0)
        abort();

    static char bare[JID_MAX + 1];
    int n = jid_bare(&j, bare, sizeof(bare));
    if (n < 0)
        abort();
    jid_t b;
    if (jid_parse(bare, (size_t)n, &b) != 0 || b.resource || (b.local == NULL) != (j.local == NULL))
        abort();
    if (!jid_domain_equal(b.domain, b.domain_len, j.domain, j.domain_len))
        abort();
    if (j.local && (b.local_len != j.local_len || memcmp(b.local, j.local, j.local_len) != 0))
        abort();
    return 0;
}
