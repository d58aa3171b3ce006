/*
 * Hosted domains: the domains the gateway serves, each with its certificate and key and the
 * internal route stanzas for it take (an XEP-0114 component with a shared secret, or an internal
 * XMPP server over s2s at host:port).
 *
 * hosted_t is a plain fixed-size value; nothing to free. Field names come from schema_hosted.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/domain.h"
#include "policy/report.h"

#define HOSTED_PATH_MAX   1024
#define HOSTED_SECRET_MAX 1024

typedef enum {
    HOSTED_ROUTE_COMPONENT = 0, /* XEP-0114 component connects to us with `secret` */
    HOSTED_ROUTE_S2S = 1,       /* we relay over s2s to target_host:target_port */
} hosted_route_t;

typedef struct {
    char domain[DOMAIN_BUF];             /* the key; normalised */
    char cert_path[HOSTED_PATH_MAX + 1]; /* PEM chain; absolute */
    char key_path[HOSTED_PATH_MAX + 1];  /* PEM private key; absolute */
    hosted_route_t route;                /* default component */
    char secret[HOSTED_SECRET_MAX + 1];  /* component secret; required for component routes */
    char target_host[DOMAIN_BUF];        /* s2s route: internal server host or IP literal */
    uint16_t target_port;                /* s2s route: port, 0 = 5269 */
    bool enabled;                        /* default true */
    uint64_t revision;                   /* set by the store */
} hosted_t;

void hosted_defaults(hosted_t *h);
/* Field bounds plus: component route needs a secret, s2s route needs a target host; paths are
   absolute. Normalises domain and target_host. 0 or FG_EREFUSED (messages in rep). */
int hosted_validate(hosted_t *h, report_t *rep);
const char *hosted_route_name(hosted_route_t r); /* "component", "s2s" */
int hosted_route_parse(const char *s, hosted_route_t *out);

int hosted_encode(const hosted_t *h, uint8_t *out, size_t cap, size_t *len);
int hosted_decode(const uint8_t *in, size_t len, hosted_t *h);
