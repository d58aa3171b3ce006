#include "policy/settings.h"

#include "core/err.h"
#include "policy/schema.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

void settings_defaults(settings_t *s)
{
    schema_defaults(&schema_settings, s);
}

int settings_validate(const settings_t *s, report_t *rep)
{
    size_t errors = schema_check(&schema_settings, s, rep);
    size_t n = strnlen(s->dialback_passphrase, sizeof(s->dialback_passphrase));
    if (n > 0 && n < 16) {
        report_add(rep, REPORT_ERROR, "dialback_passphrase",
                   "%zu characters is too short to keep dialback keys unguessable: use at least "
                   "16 (leave it unset to have one generated)",
                   n);
        errors++;
    }
    if (s->partner_connection_limit > s->connection_limit)
        report_add(rep, REPORT_WARNING, "partner_connection_limit",
                   "%u is above connection_limit %u, which caps every partner anyway",
                   s->partner_connection_limit, s->connection_limit);
    if (s->connection_limit > 19000)
        report_add(rep, REPORT_WARNING, "connection_limit",
                   "%u is above what one process can hold (20000 file descriptors, some needed "
                   "for listeners and internal routes)",
                   s->connection_limit);
    if (s->stream_inactivity_timeout < s->keepalive_interval)
        report_add(rep, REPORT_WARNING, "stream_inactivity_timeout",
                   "%u s is shorter than keepalive_interval %u s: idle streams close before a "
                   "keepalive is due",
                   s->stream_inactivity_timeout, s->keepalive_interval);
    if (!s->listen_s2s[0] && !s->listen_s2s_tls[0])
        report_add(rep, REPORT_WARNING, "listen_s2s",
                   "both s2s listeners are off: partners cannot connect to the gateway");
    if (!s->trust_anchors[0])
        report_add(rep, REPORT_WARNING, "trust_anchors",
                   "no trust anchors: no peer certificate can validate, so SASL EXTERNAL never "
                   "succeeds");
    return errors ? FG_EREFUSED : 0;
}

int settings_generate_passphrase(settings_t *s)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        s->dialback_passphrase[2 * i] = hex[raw[i] >> 4];
        s->dialback_passphrase[2 * i + 1] = hex[raw[i] & 15];
    }
    s->dialback_passphrase[64] = '\0';
    return 0;
}

void settings_stream_limits(const settings_t *s, stream_limits_t *out)
{
    stream_limits_default(out);
    out->max_stanza_bytes = s->max_stanza_size;
    out->max_buffered_bytes = s->max_stanza_size + 4096;
    out->establishment_timeout_s = s->stream_establishment_timeout;
    out->inactivity_timeout_s = s->stream_inactivity_timeout;
    out->keepalive_interval_s = s->keepalive_interval;
}

int settings_encode(const settings_t *s, uint8_t *out, size_t cap, size_t *len)
{
    return schema_encode(&schema_settings, s, out, cap, len);
}

int settings_decode(const uint8_t *in, size_t len, settings_t *s)
{
    return schema_decode(&schema_settings, in, len, s);
}
