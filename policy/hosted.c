#include "policy/hosted.h"

#include "core/err.h"
#include "policy/schema.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void hosted_defaults(hosted_t *h)
{
    schema_defaults(&schema_hosted, h);
}

const char *hosted_route_name(hosted_route_t r)
{
    return r == HOSTED_ROUTE_S2S ? "s2s" : r == HOSTED_ROUTE_COMPONENT ? "component" : "?";
}

int hosted_route_parse(const char *s, hosted_route_t *out)
{
    if (s && strcasecmp(s, "component") == 0)
        *out = HOSTED_ROUTE_COMPONENT;
    else if (s && strcasecmp(s, "s2s") == 0)
        *out = HOSTED_ROUTE_S2S;
    else
        return FG_EPARSE;
    return 0;
}

int hosted_validate(hosted_t *h, report_t *rep)
{
    char tmp[DOMAIN_BUF];
    const char *why;
    size_t errors = 0;

    h->domain[DOMAIN_BUF - 1] = '\0';
    if (domain_normalize_why(h->domain, tmp, sizeof(tmp), &why)) {
        char line[700];
        domain_error_line(h->domain, why, line, sizeof(line));
        report_add(rep, REPORT_ERROR, "domain", "%s", line);
        errors++;
        h->domain[0] = '\0';
    } else {
        memcpy(h->domain, tmp, sizeof(tmp));
    }
    h->target_host[DOMAIN_BUF - 1] = '\0';
    if (h->target_host[0]) {
        char buf[DOMAIN_BUF + 2];
        unsigned port;
        snprintf(buf, sizeof(buf), strchr(h->target_host, ':') ? "[%s]" : "%s", h->target_host);
        if (domain_parse_hostport(buf, false, tmp, sizeof(tmp), &port, &why) == 0)
            memcpy(h->target_host, tmp, sizeof(tmp));
    }
    report_t sub;
    report_init(&sub, 64);
    report_set_subject(&sub, rep ? rep->subject : "");
    schema_check(&schema_hosted, h, &sub);
    for (size_t i = 0; i < sub.n; i++) {
        if (strcmp(sub.msg[i].field, "domain") == 0 && errors)
            continue;
        report_add(rep, sub.msg[i].severity, sub.msg[i].field, "%s", sub.msg[i].text);
        errors++;
    }
    report_free(&sub);

    if (h->route == HOSTED_ROUTE_COMPONENT && !h->secret[0]) {
        report_add(rep, REPORT_ERROR, "secret",
                   "a component route needs the component's secret: set secret, or use route "
                   "s2s with a target");
        errors++;
    }
    if (h->route == HOSTED_ROUTE_S2S && !h->target_host[0]) {
        report_add(rep, REPORT_ERROR, "target",
                   "an s2s route needs the internal server: set target HOST[:PORT]");
        errors++;
    }
    if (!h->cert_path[0] || !h->key_path[0])
        report_add(rep, REPORT_WARNING, h->cert_path[0] ? "key_path" : "cert_path",
                   "without a certificate and key the domain can only federate with partners "
                   "whose TLS is NotSupported");
    return errors ? FG_EREFUSED : 0;
}

int hosted_encode(const hosted_t *h, uint8_t *out, size_t cap, size_t *len)
{
    return schema_encode(&schema_hosted, h, out, cap, len);
}

int hosted_decode(const uint8_t *in, size_t len, hosted_t *h)
{
    return schema_decode(&schema_hosted, in, len, h);
}
