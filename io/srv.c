#include "io/srv.h"

#include <string.h>

bool srv_is_dot(const char *target)
{
    return target[0] == '\0' || (target[0] == '.' && target[1] == '\0');
}

const char *srv_plan_name(srv_plan_kind_t k)
{
    switch (k) {
    case SRV_PLAN_TARGETS:
        return "targets";
    case SRV_PLAN_FALLBACK:
        return "fallback";
    case SRV_PLAN_NO_SERVICE:
        return "no-service";
    case SRV_PLAN_ERROR:
        return "error";
    }
    return "?";
}

static void swap(srv_rr_t *a, srv_rr_t *b)
{
    srv_rr_t t = *a;
    *a = *b;
    *b = t;
}

/* Weighted random order of one priority group (RFC 2782 "Usage rules"). */
static void order_group(srv_rr_t *rr, size_t n, srv_rng_t rng, void *rng_arg)
{
    /* Zero-weight records first so they have a (small) chance of being chosen early, as the RFC
     * asks; a stable pass keeps their relative order. */
    size_t z = 0;
    for (size_t i = 0; i < n; i++) {
        if (rr[i].weight == 0) {
            srv_rr_t t = rr[i];
            memmove(&rr[z + 1], &rr[z], (i - z) * sizeof(*rr));
            rr[z++] = t;
        }
    }
    for (size_t done = 0; done + 1 < n; done++) {
        uint32_t sum = 0;
        for (size_t i = done; i < n; i++)
            sum += rr[i].weight;
        uint32_t pick = rng(rng_arg) % (sum + 1);
        uint32_t run = 0;
        size_t chosen = n - 1;
        for (size_t i = done; i < n; i++) {
            run += rr[i].weight;
            if (run >= pick) {
                chosen = i;
                break;
            }
        }
        /* Keep the remaining records in their order (rotate rather than swap) so zero weights stay
         * at the front of what is left. */
        srv_rr_t t = rr[chosen];
        memmove(&rr[done + 1], &rr[done], (chosen - done) * sizeof(*rr));
        rr[done] = t;
    }
}

void srv_order(srv_rr_t *rr, size_t n, srv_rng_t rng, void *rng_arg)
{
    /* Stable insertion sort by priority: n is small (bounded by the caller) and the input order
     * matters for ties. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && rr[j - 1].priority > rr[j].priority; j--)
            swap(&rr[j - 1], &rr[j]);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && rr[j].priority == rr[i].priority)
            j++;
        order_group(rr + i, j - i, rng, rng_arg);
        i = j;
    }
}

/* An answer whose only record(s) are "." : the service is decidedly not offered. */
static bool answer_is_dot(const srv_answer_t *a)
{
    if (a->status != SRV_ANS_RECORDS || a->n == 0)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!srv_is_dot(a->rr[i].target))
            return false;
    return true;
}

static size_t collect(const srv_answer_t *a, bool direct_tls, srv_rr_t *out, size_t n, size_t max)
{
    if (a->status != SRV_ANS_RECORDS)
        return n;
    for (size_t i = 0; i < a->n && n < max; i++) {
        if (srv_is_dot(a->rr[i].target))
            continue;
        out[n] = a->rr[i];
        out[n].direct_tls = direct_tls;
        n++;
    }
    return n;
}

srv_plan_kind_t srv_plan(const srv_answer_t *xmpps, const srv_answer_t *xmpp, srv_rng_t rng,
                         void *rng_arg, srv_rr_t *out, size_t max, size_t *nout)
{
    /* Gather everything first, then order, so that a bound on `max` drops the lowest-ranked targets
     * rather than whichever came last. A fixed scratch bound keeps this allocation-free. */
    srv_rr_t all[64];
    size_t n = 0;
    n = collect(xmpps, true, all, n, sizeof(all) / sizeof(all[0]));
    n = collect(xmpp, false, all, n, sizeof(all) / sizeof(all[0]));
    *nout = 0;
    if (n > 0) {
        srv_order(all, n, rng, rng_arg);
        if (n > max)
            n = max;
        memcpy(out, all, n * sizeof(*out));
        *nout = n;
        return SRV_PLAN_TARGETS;
    }
    if (answer_is_dot(xmpp) || answer_is_dot(xmpps))
        return SRV_PLAN_NO_SERVICE;
    if (xmpps->status == SRV_ANS_ERROR || xmpp->status == SRV_ANS_ERROR)
        return SRV_PLAN_ERROR;
    return SRV_PLAN_FALLBACK;
}
