#include "core/peer.h"

#include "core/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const neg_names[] = {"Required", "Optional", "NotSupported"};
static const char *const type_names[] = {"Federated", "PublicVerified", "PublicUnverified"};

const char *negotiation_name(negotiation_t n)
{
    return (unsigned)n < 3 ? neg_names[n] : "?";
}

const char *partner_type_name(partner_type_t t)
{
    return (unsigned)t < 3 ? type_names[t] : "?";
}

bool peer_name_eq(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ' || *a == '-' || *a == '_')
            a++;
        while (*b == ' ' || *b == '-' || *b == '_')
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
        a++;
        b++;
    }
}

int negotiation_parse(const char *s, negotiation_t *out)
{
    for (int i = 0; s && i < 3; i++)
        if (peer_name_eq(s, neg_names[i])) {
            *out = (negotiation_t)i;
            return 0;
        }
    return FG_EPARSE;
}

int partner_type_parse(const char *s, partner_type_t *out)
{
    for (int i = 0; s && i < 3; i++)
        if (peer_name_eq(s, type_names[i])) {
            *out = (partner_type_t)i;
            return 0;
        }
    return FG_EPARSE;
}

void stream_limits_default(stream_limits_t *l)
{
    memset(l, 0, sizeof(*l));
    l->max_stanza_bytes = 65536;
    l->max_stanza_bytes_preauth = 10000;
    l->max_buffered_bytes = 65536 + 4096;
    l->max_depth = 32;
    l->max_attrs = 64;
    l->max_name_len = 1024;
    l->establishment_timeout_s = 60;
    l->inactivity_timeout_s = 600;
    l->keepalive_interval_s = 300;
    l->max_domain_pairs = 64;
    l->max_queued_stanzas = 256;
}
