#include "policy/partner.h"

#include "core/err.h"
#include "policy/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void partner_defaults(partner_t *p)
{
    schema_defaults(&schema_partner, p);
}

int partner_matrix_row(negotiation_t tls, negotiation_t sasl, bool dialback)
{
    if ((unsigned)tls > NEG_NOT_SUPPORTED || (unsigned)sasl > NEG_NOT_SUPPORTED)
        return 0;
    /* lync-spec §2.1 orders rows by SASL, then TLS, then dialback true before false. */
    return (int)sasl * 6 + (int)tls * 2 + (dialback ? 1 : 2);
}

partner_neg_verdict_t partner_matrix_verdict(int row)
{
    switch (row) {
    case 5:
    case 6:
    case 11:
    case 12:
    case 14:
    case 16:
    case 18:
        return PARTNER_NEG_ERROR;
    case 1:
    case 3:
    case 4:
    case 9:
    case 10:
        return PARTNER_NEG_WARNING;
    default:
        return PARTNER_NEG_OK;
    }
}

partner_neg_verdict_t partner_check_negotiation(const partner_t *p, report_t *rep)
{
    int row = partner_matrix_row(p->tls, p->sasl, p->dialback);
    partner_neg_verdict_t v = partner_matrix_verdict(row);
    switch (row) {
    case 0:
        report_add(rep, REPORT_ERROR, "tls", "unknown TLS or SASL negotiation value");
        return PARTNER_NEG_ERROR;
    case 1:
        report_add(rep, REPORT_WARNING, "dialback",
                   "dialback never operates when both TLS and SASL are Required (matrix row 1): "
                   "set dialback to false, or SASL to Optional to allow dialback as a fallback");
        break;
    case 3:
    case 4:
    case 9:
    case 10:
        report_add(rep, REPORT_WARNING, "tls",
                   "SASL needs TLS but TLS is only Optional (matrix row %d): a partner that does "
                   "not offer TLS cannot use SASL and negotiation may fail; set TLS to Required%s",
                   row, p->dialback ? ", or SASL to NotSupported to rely on dialback" : "");
        break;
    case 5:
    case 6:
    case 11:
    case 12:
        report_add(rep, REPORT_ERROR, "sasl",
                   "SASL needs TLS, and TLS is NotSupported (matrix row %d): set SASL to "
                   "NotSupported%s, or set TLS to Required or Optional",
                   row, p->dialback ? "" : " and dialback to true");
        break;
    case 14:
    case 16:
    case 18:
        report_add(rep, REPORT_ERROR, "dialback",
                   "SASL or dialback must be enabled (matrix row %d): set dialback to true%s", row,
                   p->tls == NEG_NOT_SUPPORTED ? "" : ", or SASL to Required or Optional");
        break;
    case 13:
        report_add(rep, REPORT_INFO, "dialback",
                   "the partner authenticates with dialback over TLS (matrix row 13)");
        break;
    case 15:
        report_add(
            rep, REPORT_INFO, "dialback",
            "dialback over TLS or over plain TCP, as the partner negotiates (matrix row 15)");
        break;
    case 17:
        report_add(rep, REPORT_INFO, "dialback",
                   "dialback over unencrypted TCP is the only method (matrix row 17)");
        break;
    default:
        break;
    }
    return v;
}

static int cmp_domain(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void domain_msg(report_t *rep, const char *field, const char *in, const char *why)
{
    char line[700];
    domain_error_line(in, why, line, sizeof(line));
    report_add(rep, REPORT_ERROR, field, "%s", line);
}

int partner_validate(partner_t *p, uint32_t gateway_conn_limit, report_t *rep)
{
    size_t errors0 = rep ? rep->errors : 0;
    size_t own_errors = 0;
    char tmp[DOMAIN_BUF];
    const char *why;
    bool is_default = strcmp(p->domain, "*") == 0;

    p->domain[DOMAIN_BUF - 1] = '\0';
    if (!is_default) {
        if (domain_normalize_why(p->domain, tmp, sizeof(tmp), &why)) {
            domain_msg(rep, "domain", p->domain, why);
            own_errors++;
        } else {
            memcpy(p->domain, tmp, sizeof(tmp));
        }
    } else if (p->n_additional) {
        report_add(rep, REPORT_ERROR, "additional_domains",
                   "the default profile \"*\" applies to unknown domains and cannot list domains");
        own_errors++;
    }

    if (p->n_additional > PARTNER_MAX_DOMAINS) {
        report_add(rep, REPORT_ERROR, "additional_domains", "%u domains, at most %d allowed",
                   p->n_additional, PARTNER_MAX_DOMAINS);
        own_errors++;
        p->n_additional = PARTNER_MAX_DOMAINS;
    }
    bool list_ok = true;
    for (uint32_t i = 0; i < p->n_additional; i++) {
        p->additional[i][DOMAIN_BUF - 1] = '\0';
        if (domain_normalize_why(p->additional[i], tmp, sizeof(tmp), &why)) {
            domain_msg(rep, "additional_domains", p->additional[i], why);
            own_errors++;
            list_ok = false;
        } else {
            memcpy(p->additional[i], tmp, sizeof(tmp));
        }
    }
    if (list_ok) {
        qsort(p->additional, p->n_additional, DOMAIN_BUF, cmp_domain);
        for (uint32_t i = 0; i < p->n_additional; i++) {
            if (i > 0 && strcmp(p->additional[i], p->additional[i - 1]) == 0) {
                report_add(rep, REPORT_ERROR, "additional_domains",
                           "\"%s\" is listed twice: remove the duplicate", p->additional[i]);
                own_errors++;
            }
            if (strcmp(p->additional[i], p->domain) == 0) {
                report_add(rep, REPORT_ERROR, "additional_domains",
                           "\"%s\" is the primary domain: remove it from additional_domains",
                           p->additional[i]);
                own_errors++;
            }
        }
    }

    p->proxy_host[DOMAIN_BUF - 1] = '\0';
    if (p->proxy_host[0]) {
        char buf[DOMAIN_BUF + 2];
        unsigned port;
        snprintf(buf, sizeof(buf), strchr(p->proxy_host, ':') ? "[%s]" : "%s", p->proxy_host);
        if (domain_parse_hostport(buf, false, tmp, sizeof(tmp), &port, &why) == 0)
            memcpy(p->proxy_host, tmp, sizeof(tmp));
        /* else schema_check below reports it */
    }
    p->description[PARTNER_DESCRIPTION_MAX] = '\0';

    /* Bounds and syntax of every field from the schema table; domains were checked above. */
    report_t tmprep;
    report_init(&tmprep, 64);
    report_set_subject(&tmprep, rep ? rep->subject : "");
    schema_check(&schema_partner, p, &tmprep);
    for (size_t i = 0; i < tmprep.n; i++) {
        const report_msg_t *m = &tmprep.msg[i];
        if (strcmp(m->field, "domain") == 0 || strcmp(m->field, "additional_domains") == 0)
            continue;
        report_add(rep, m->severity, m->field, "%s", m->text);
        own_errors++;
    }
    report_free(&tmprep);

    if (partner_check_negotiation(p, rep) == PARTNER_NEG_ERROR)
        own_errors++;

    if (p->connection_limit_set && p->connection_limit == 0)
        report_add(rep, REPORT_WARNING, "connection_limit",
                   "0 refuses every connection to this partner: unset it to use the gateway's "
                   "PartnerConnectionLimit");
    else if (p->connection_limit_set && gateway_conn_limit &&
             p->connection_limit > gateway_conn_limit)
        report_add(rep, REPORT_WARNING, "connection_limit",
                   "%u is above the gateway's ConnectionLimit of %u, which still caps it",
                   p->connection_limit, gateway_conn_limit);

    (void)errors0;
    return own_errors ? FG_EREFUSED : 0;
}

void partner_rules(const partner_t *p, peer_rules_t *out)
{
    out->tls = p->tls;
    out->sasl = p->sasl;
    out->dialback = p->dialback;
    out->keepalive = p->keepalive;
    out->type = p->type;
}

bool partner_has_domain(const partner_t *p, const char *d)
{
    if (strcmp(p->domain, d) == 0)
        return true;
    for (uint32_t i = 0; i < p->n_additional && i < PARTNER_MAX_DOMAINS; i++)
        if (strcmp(p->additional[i], d) == 0)
            return true;
    return false;
}

int partner_add_domain(partner_t *p, const char *domain)
{
    char d[DOMAIN_BUF];
    if (domain_normalize(domain, d, sizeof(d)))
        return FG_EDOMAIN;
    if (partner_has_domain(p, d))
        return FG_ECONFLICT;
    if (p->n_additional >= PARTNER_MAX_DOMAINS)
        return FG_ELIMIT;
    memcpy(p->additional[p->n_additional++], d, sizeof(d));
    qsort(p->additional, p->n_additional, DOMAIN_BUF, cmp_domain);
    return 0;
}

int partner_remove_domain(partner_t *p, const char *domain)
{
    char d[DOMAIN_BUF];
    if (domain_normalize(domain, d, sizeof(d)))
        return FG_ENOTFOUND;
    for (uint32_t i = 0; i < p->n_additional; i++)
        if (strcmp(p->additional[i], d) == 0) {
            memmove(p->additional[i], p->additional[i + 1],
                    (size_t)(p->n_additional - i - 1) * DOMAIN_BUF);
            p->n_additional--;
            return 0;
        }
    return FG_ENOTFOUND;
}

void partner_clear_domains(partner_t *p)
{
    p->n_additional = 0;
}

int partner_encode(const partner_t *p, uint8_t *out, size_t cap, size_t *len)
{
    return schema_encode(&schema_partner, p, out, cap, len);
}

int partner_decode(const uint8_t *in, size_t len, partner_t *p)
{
    return schema_decode(&schema_partner, in, len, p);
}
