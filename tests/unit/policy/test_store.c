/*
 * The store on a real LMDB environment under mkdtemp(): defaults, uniqueness, revisions,
 * what-if, import/export, hosted domains, access policy, audit, the key/value API, refusal of
 * corrupt, truncated and newer-schema stores, and the cached reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "policy/json.h"
#include "policy/lookup.h"
#include "policy/schema.h"
#include "policy/store.h"

#include "policy_test.h"

typedef struct {
    char *dir;
    store_t *s;
    report_t rep;
    store_ctx_t ctx;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    char err[256];
    fx->dir = test_tmpdir();
    if (!fx->dir || store_open(fx->dir, STORE_CREATE, &fx->s, err, sizeof(err)))
        return -1;
    fx->ctx.actor = "test:unit";
    report_init(&fx->rep, 0);
    if (store_init(fx->s, &fx->ctx, false, &fx->rep))
        return -1;
    free(fx->ctx.change);
    fx->ctx.change = NULL;
    report_clear(&fx->rep);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    free(fx->ctx.change);
    report_free(&fx->rep);
    store_close(fx->s);
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static void ctx_reset(fx_t *fx)
{
    free(fx->ctx.change);
    fx->ctx.change = NULL;
    fx->ctx.what_if = false;
    report_clear(&fx->rep);
}

static int new_partner(fx_t *fx, const char *domain, const char *additional)
{
    partner_t p;
    char err[256];
    partner_defaults(&p);
    snprintf(p.domain, sizeof(p.domain), "%s", domain);
    p.dialback = false; /* row 2: no warning */
    if (additional)
        assert_int_equal(schema_parse_value(schema_find(&schema_partner, "additional-domains"), &p,
                                            additional, err, sizeof(err)),
                         0);
    ctx_reset(fx);
    return store_partner_create(fx->s, &fx->ctx, &p, &fx->rep);
}

static void test_init_defaults(void **state)
{
    fx_t *fx = *state;
    settings_t st;
    assert_int_equal(store_settings_get(fx->s, &st), 0);
    /* lync-spec §7 item 5 */
    assert_int_equal(st.connection_limit, 1000);
    assert_int_equal(st.partner_connection_limit, 20);
    assert_int_equal(st.keepalive_interval, 300);
    assert_int_equal(st.stream_establishment_timeout, 60);
    assert_int_equal(st.stream_inactivity_timeout, 600);
    assert_int_equal(st.subscription_refresh_interval, 28800);
    assert_false(st.log_message_bodies);
    assert_int_equal(st.unknown_domains, SETTINGS_UNKNOWN_DENY);
    assert_int_equal(strlen(st.dialback_passphrase), 64);
    assert_int_equal(st.revision, 1);
    bool v = true;
    assert_int_equal(store_access_get(fx->s, "global", &v), 0);
    assert_false(v);
    /* idempotent: a second init keeps the passphrase and changes nothing */
    char pass[80];
    strcpy(pass, st.dialback_passphrase);
    ctx_reset(fx);
    assert_int_equal(store_init(fx->s, &fx->ctx, true, &fx->rep), 0);
    assert_null(fx->ctx.change);
    assert_int_equal(store_settings_get(fx->s, &st), 0);
    assert_string_equal(st.dialback_passphrase, pass);
    assert_int_equal(store_access_get(fx->s, "global", &v), 0);
    assert_false(v);
    /* the passphrase is hidden from the text and JSON forms unless asked */
    char out[128];
    schema_format_value(schema_find(&schema_settings, "dialback_passphrase"), &st, false, out,
                        sizeof(out));
    assert_string_equal(out, "(set)");
    buf_t b;
    buf_init(&b, 1 << 16);
    assert_int_equal(json_encode_object(&schema_settings, &st, 0, 0, &b), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_null(strstr((char *)b.data, pass));
    buf_free(&b);
}

static void test_settings_update(void **state)
{
    fx_t *fx = *state;
    settings_t st, got;
    assert_int_equal(store_settings_get(fx->s, &st), 0);
    char old_pass[80];
    strcpy(old_pass, st.dialback_passphrase);
    st.connection_limit = 500;
    st.dialback_passphrase[0] = '\0'; /* "" keeps the stored one */
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &st, 1, &fx->rep), 0);
    assert_int_equal(store_settings_get(fx->s, &got), 0);
    assert_int_equal(got.connection_limit, 500);
    assert_int_equal(got.revision, 2);
    assert_string_equal(got.dialback_passphrase, old_pass);
    /* stale revision */
    st.connection_limit = 600;
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &st, 1, &fx->rep), FG_ESTALE);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "revision", "someone else"));
    /* bounds */
    got.keepalive_interval = 5;
    got.max_stanza_size = 100;
    strcpy(got.listen_s2s, "nonsense");
    strcpy(got.dialback_passphrase, "short");
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &got, STORE_ANY_REV, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "keepalive_interval", NULL));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "max_stanza_size", NULL));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "listen_s2s", "nonsense"));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "dialback_passphrase", "short"));
    assert_int_equal(store_settings_get(fx->s, &got), 0);
    assert_int_equal(got.revision, 2);
    /* a new passphrase: stored, audited without its value */
    assert_int_equal(store_settings_get(fx->s, &st), 0);
    strcpy(st.dialback_passphrase, "a-new-shared-secret-for-the-pool");
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &st, STORE_ANY_REV, &fx->rep), 0);
    assert_non_null(fx->ctx.change);
    assert_null(strstr(fx->ctx.change, "a-new-shared-secret"));
    assert_non_null(strstr(fx->ctx.change, "(changed)"));
    /* warning: partner limit above total */
    st.partner_connection_limit = 2000;
    st.dialback_passphrase[0] = '\0';
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &st, STORE_ANY_REV, &fx->rep), 0);
    assert_true(report_contains(&fx->rep, REPORT_WARNING, "partner_connection_limit", NULL));
}

static int count_cb(const partner_t *p, void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

static void test_duplicate_domains(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "fabrikam.com", "research.fabrikam2.com"), 0);
    /* same primary again */
    assert_int_equal(new_partner(fx, "Fabrikam.com.", NULL), FG_ECONFLICT);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "already exists"));
    /* primary that is another partner's additional domain, named */
    assert_int_equal(new_partner(fx, "research.fabrikam2.com", NULL), FG_ECONFLICT);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "fabrikam.com"));
    /* additional that is another partner's primary and additional: both reported */
    assert_int_equal(new_partner(fx, "contoso.com", "fabrikam.com,research.fabrikam2.com"),
                     FG_ECONFLICT);
    assert_int_equal(fx->rep.errors, 2);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "additional_domains",
                                "belongs to partner fabrikam.com"));
    partner_t p;
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &p), FG_ENOTFOUND);
    /* lookup by additional domain */
    assert_int_equal(store_partner_find(fx->s, "RESEARCH.fabrikam2.com", &p), 0);
    assert_string_equal(p.domain, "fabrikam.com");
    /* removing the domain from fabrikam frees it */
    partner_t upd;
    assert_int_equal(store_partner_get(fx->s, "fabrikam.com", &upd), 0);
    partner_clear_domains(&upd);
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &upd, upd.revision, &fx->rep), 0);
    assert_int_equal(store_partner_find(fx->s, "research.fabrikam2.com", &p), FG_ENOTFOUND);
    assert_int_equal(new_partner(fx, "contoso.com", "research.fabrikam2.com"), 0);
    /* remove frees all its domains */
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "contoso.com", STORE_ANY_REV, &fx->rep),
                     0);
    assert_int_equal(new_partner(fx, "research.fabrikam2.com", NULL), 0);
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "nope.example", STORE_ANY_REV, &fx->rep),
                     FG_ENOTFOUND);
    size_t n = 0;
    assert_int_equal(store_partner_list(fx->s, "*.com", count_cb, &n), 0);
    assert_int_equal(n, 2); /* fabrikam.com and research.fabrikam2.com */
    n = 0;
    assert_int_equal(store_partner_list(fx->s, "FAB*", count_cb, &n), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(store_partner_list(fx->s, "research*", count_cb, &n), 0);
    assert_int_equal(n, 1);
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "bad..name", STORE_ANY_REV, &fx->rep),
                     FG_EDOMAIN);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "bad..name"));
}

static void test_hosted_and_partner_overlap(void **state)
{
    fx_t *fx = *state;
    hosted_t h;
    hosted_defaults(&h);
    strcpy(h.domain, "Example.ORG");
    strcpy(h.secret, "component-secret");
    strcpy(h.cert_path, "/etc/fedgate/example.org.pem");
    strcpy(h.key_path, "/etc/fedgate/example.org.key");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep), 0);
    hosted_t got;
    assert_int_equal(store_hosted_get(fx->s, "example.org", &got), 0);
    assert_string_equal(got.secret, "component-secret");
    assert_int_equal(got.revision, 1);
    /* partner may not take a hosted domain */
    assert_int_equal(new_partner(fx, "example.org", NULL), FG_ECONFLICT);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "hosted"));
    assert_int_equal(new_partner(fx, "partner.example", "example.org"), FG_ECONFLICT);
    /* hosted may not take a partner's domain */
    assert_int_equal(new_partner(fx, "partner.example", "alias.partner.example"), 0);
    hosted_defaults(&h);
    strcpy(h.domain, "alias.partner.example");
    h.route = HOSTED_ROUTE_S2S;
    strcpy(h.target_host, "internal.example");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_UPSERT, 0, &fx->rep),
                     FG_ECONFLICT);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "partner.example"));
    /* route rules */
    hosted_defaults(&h);
    strcpy(h.domain, "chat.example.org");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "secret", NULL));
    h.route = HOSTED_ROUTE_S2S;
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "target", NULL));
    strcpy(h.target_host, "10.1.2.3");
    h.target_port = 5269;
    strcpy(h.cert_path, "relative.pem");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "cert_path", "absolute"));
    h.cert_path[0] = '\0';
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep), 0);
    assert_true(report_contains(&fx->rep, REPORT_WARNING, NULL, "certificate"));
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep),
                     FG_ECONFLICT);
    /* an empty secret keeps the stored one (re-import of an export without secrets) */
    hosted_t again;
    assert_int_equal(store_hosted_get(fx->s, "example.org", &again), 0);
    again.secret[0] = '\0';
    again.enabled = false;
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &again, STORE_PUT_UPDATE, 0, &fx->rep), 0);
    assert_int_equal(store_hosted_get(fx->s, "example.org", &again), 0);
    assert_string_equal(again.secret, "component-secret");
    assert_false(again.enabled);
    ctx_reset(fx);
    assert_int_equal(store_hosted_remove(fx->s, &fx->ctx, "chat.example.org", &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_hosted_remove(fx->s, &fx->ctx, "chat.example.org", &fx->rep),
                     FG_ENOTFOUND);
}

static void test_revision_stale(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "contoso.com", NULL), 0);
    partner_t a, b;
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &a), 0);
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &b), 0);
    assert_int_equal(a.revision, 1);
    /* two editors read revision 1; the first commit wins, the second is stale */
    a.type = PARTNER_FEDERATED;
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &a, 1, &fx->rep), 0);
    assert_int_equal(a.revision, 2);
    b.keepalive = false;
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &b, b.revision, &fx->rep), FG_ESTALE);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "revision", "changed by someone else"));
    partner_t got;
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &got), 0);
    assert_int_equal(got.type, PARTNER_FEDERATED);
    assert_true(got.keepalive);
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "contoso.com", 1, &fx->rep), FG_ESTALE);
    /* an update that changes nothing keeps the revision and writes no audit entry */
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &got, 2, &fx->rep), 0);
    assert_int_equal(got.revision, 2);
    assert_null(fx->ctx.change);
    /* update of a missing partner */
    strcpy(got.domain, "missing.example");
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &got, STORE_ANY_REV, &fx->rep),
                     FG_ENOTFOUND);
}

static int edit_limit(partner_t *p, void *arg)
{
    p->connection_limit_set = true;
    p->connection_limit = *(uint32_t *)arg;
    return 0;
}

static int edit_bad(partner_t *p, void *arg)
{
    p->tls = NEG_NOT_SUPPORTED; /* with SASL Required: row 5, refused */
    return 0;
}

static void test_modify_and_what_if(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "contoso.com", NULL), 0);
    uint32_t lim = 5;
    partner_t out;
    ctx_reset(fx);
    assert_int_equal(
        store_partner_modify(fx->s, &fx->ctx, "contoso.com", edit_limit, &lim, &out, &fx->rep), 0);
    assert_int_equal(out.connection_limit, 5);
    assert_int_equal(out.revision, 2);
    ctx_reset(fx);
    assert_int_equal(
        store_partner_modify(fx->s, &fx->ctx, "contoso.com", edit_bad, NULL, &out, &fx->rep),
        FG_EREFUSED);
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &out), 0);
    assert_int_equal(out.tls, NEG_REQUIRED);
    /* what-if: described, nothing saved */
    lim = 9;
    ctx_reset(fx);
    fx->ctx.what_if = true;
    assert_int_equal(
        store_partner_modify(fx->s, &fx->ctx, "contoso.com", edit_limit, &lim, &out, &fx->rep), 0);
    assert_non_null(fx->ctx.change);
    assert_non_null(strstr(fx->ctx.change, "\"what_if\":true"));
    assert_non_null(strstr(fx->ctx.change, "\"connection_limit\":9"));
    assert_non_null(strstr(fx->ctx.change, "\"connection_limit\":5"));
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &out), 0);
    assert_int_equal(out.connection_limit, 5);
    ctx_reset(fx);
    fx->ctx.what_if = true;
    partner_t p;
    partner_defaults(&p);
    strcpy(p.domain, "whatif.example");
    assert_int_equal(store_partner_create(fx->s, &fx->ctx, &p, &fx->rep), 0);
    assert_int_equal(store_partner_get(fx->s, "whatif.example", &p), FG_ENOTFOUND);
    ctx_reset(fx);
    fx->ctx.what_if = true;
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "contoso.com", STORE_ANY_REV, &fx->rep),
                     0);
    assert_int_equal(store_partner_get(fx->s, "contoso.com", &p), 0);
}

static const char bad_import[] =
    "{\"partners\": [\n"
    " {\"domain\": \"good.example\", \"tls\": \"Optional\", \"sasl\": \"Optional\"},\n"
    " {\"domain\": \"bad domain.example\"},\n"
    " {\"domain\": \"row6.example\", \"tls\": \"NotSupported\", \"dialback\": false},\n"
    " {\"domain\": \"dup.example\", \"additional_domains\": [\"existing.example\"]},\n"
    " {\"domain\": \"neg.example\", \"connection_limit\": -1},\n"
    " {\"domain\": \"enum.example\", \"type\": \"Friendly\"},\n"
    " {\"domain\": \"good.example\"},\n"
    " {\"domain\": \"other.example\", \"colour\": \"blue\"}\n"
    "]}";

static size_t count_partners(store_t *s)
{
    size_t n = 0;
    assert_int_equal(store_partner_list(s, NULL, count_cb, &n), 0);
    return n;
}

/* Partner, additional and hosted domains refuse IP literals; a proxy address may be one. */
static void test_ip_literal_domains(void **state)
{
    fx_t *fx = *state;
    const char *ip_reason = "an IP address is not a domain; name the partner by its XMPP domain";
    assert_int_equal(new_partner(fx, "1.2.3.4", NULL), FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", ip_reason));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "\"1.2.3.4\""));
    partner_t p;
    char err[512];
    partner_defaults(&p);
    strcpy(p.domain, "ok.example");
    assert_int_equal(schema_parse_value(schema_find(&schema_partner, "additional-domains"), &p,
                                        "a.example,10.0.0.1", err, sizeof(err)),
                     FG_EDOMAIN);
    assert_non_null(strstr(err, ip_reason));
    /* set directly (as a decoded record would be): partner_validate refuses it too */
    p.dialback = false;
    p.n_additional = 1;
    strcpy(p.additional[0], "10.0.0.1");
    ctx_reset(fx);
    assert_int_equal(store_partner_create(fx->s, &fx->ctx, &p, &fx->rep), FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "additional_domains", ip_reason));
    /* a proxy may be an address with a port */
    partner_defaults(&p);
    strcpy(p.domain, "ok.example");
    p.dialback = false;
    assert_int_equal(schema_parse_value(schema_find(&schema_partner, "proxy-fqdn"), &p,
                                        "192.0.2.7:5270", err, sizeof(err)),
                     0);
    ctx_reset(fx);
    assert_int_equal(store_partner_create(fx->s, &fx->ctx, &p, &fx->rep), 0);
    assert_int_equal(store_partner_get(fx->s, "ok.example", &p), 0);
    assert_string_equal(p.proxy_host, "192.0.2.7");
    assert_int_equal(p.proxy_port, 5270);
    /* hosted domains */
    hosted_t h;
    hosted_defaults(&h);
    strcpy(h.domain, "192.168.1.1");
    strcpy(h.secret, "s");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "IP address"));
    /* JSON import names it the same way */
    const char *doc = "[{\"domain\": \"1.2.3.4\", \"dialback\": false}]";
    ctx_reset(fx);
    assert_int_equal(store_import_json(fx->s, &fx->ctx, doc, strlen(doc), 0, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", ip_reason));
}

/* Import walks each array once: the navigation steps grow with the partners, not their square
   (the old json_child walk from the start took ~N*N/2 steps: 2M here). */
/* A partner stored under an address by a build before the rule: readable and removable by key,
   refused when changed. */
static void test_legacy_ip_partner(void **state)
{
    fx_t *fx = *state;
    partner_t p;
    partner_defaults(&p);
    strcpy(p.domain, "192.0.2.1");
    p.dialback = false;
    p.revision = 1;
    uint8_t rec[SCHEMA_RECORD_MAX];
    size_t len;
    assert_int_equal(schema_encode(&schema_partner, &p, rec, sizeof(rec), &len), 0);
    store_close(fx->s);
    fx->s = NULL;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi, dom;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    assert_int_equal(mdb_env_open(env, fx->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "partners", 0, &dbi), 0);
    assert_int_equal(mdb_dbi_open(t, "partner_domains", 0, &dom), 0);
    MDB_val k = {9, "192.0.2.1"}, v = {len, rec};
    assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
    MDB_val dv = {9, "192.0.2.1"};
    assert_int_equal(mdb_put(t, dom, &k, &dv, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    char err[256];
    assert_int_equal(store_open(fx->dir, 0, &fx->s, err, sizeof(err)), 0);

    assert_int_equal(store_partner_get(fx->s, "192.0.2.1", &p), 0);
    p.keepalive = false;
    ctx_reset(fx);
    assert_int_equal(store_partner_update(fx->s, &fx->ctx, &p, STORE_ANY_REV, &fx->rep),
                     FG_EREFUSED);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "IP address"));
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "192.0.2.1", STORE_ANY_REV, &fx->rep),
                     0);
    assert_int_equal(store_partner_get(fx->s, "192.0.2.1", &p), FG_ENOTFOUND);
}

static void test_import_linear(void **state)
{
    fx_t *fx = *state;
    enum { N = 2000 };
    buf_t b;
    buf_init(&b, 1 << 24);
    assert_int_equal(buf_append_str(&b, "{\"partners\": ["), 0);
    for (int i = 0; i < N; i++) {
        char one[128];
        snprintf(one, sizeof(one), "%s{\"domain\": \"p%d.example\", \"dialback\": false}",
                 i ? "," : "", i);
        assert_int_equal(buf_append_str(&b, one), 0);
    }
    assert_int_equal(buf_append_str(&b, "], \"hosted\": []}"), 0);
    ctx_reset(fx);
    fx->ctx.what_if = true;
    uint64_t before = json_steps();
    int rc = store_import_json(fx->s, &fx->ctx, (const char *)b.data, b.len, 0, &fx->rep);
    uint64_t steps = json_steps() - before;
    if (rc)
        fail_msg("import: %s %s", fg_strerror(rc), fx->rep.n ? fx->rep.msg[0].text : "");
    assert_true(report_contains(&fx->rep, REPORT_INFO, NULL, "2000 created"));
    if (steps > 20u * N)
        fail_msg("%llu navigation steps for %d partners: not linear", (unsigned long long)steps, N);
    assert_true(steps >= N); /* the counter counts */
    buf_free(&b);
}

static int hosted_cb(const hosted_t *h, void *arg)
{
    (void)h;
    ++*(size_t *)arg;
    return 0;
}

static size_t count_hosted(store_t *s)
{
    size_t n = 0;
    assert_int_equal(store_hosted_list(s, hosted_cb, &n), 0);
    return n;
}

static int replace_with(fx_t *fx, const char *doc)
{
    ctx_reset(fx);
    int rc = store_import_json(fx->s, &fx->ctx, doc, strlen(doc), STORE_IMPORT_REPLACE, &fx->rep);
    if (rc)
        fail_msg("import --replace %s: %s %s", doc, fg_strerror(rc),
                 fx->rep.n ? fx->rep.msg[0].text : "");
    return rc;
}

/* Replace acts per section the document has: `partner get --json` piped into import --replace
   replaces the partners and leaves hosted domains and access values alone. */
static void test_import_replace_per_section(void **state)
{
    fx_t *fx = *state;
    bool v;
    assert_int_equal(new_partner(fx, "a.example", NULL), 0);
    assert_int_equal(new_partner(fx, "b.example", NULL), 0);
    hosted_t h;
    hosted_defaults(&h);
    strcpy(h.domain, "chat.example.net");
    strcpy(h.secret, "s3cret");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "global", true, &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "domain:x.example", false, &fx->rep), 0);

    /* a bare array is the partners section */
    replace_with(fx, "[{\"domain\": \"a.example\", \"dialback\": false}]");
    assert_int_equal(count_partners(fx->s), 1);
    assert_int_equal(count_hosted(fx->s), 1);
    assert_int_equal(store_access_get(fx->s, "domain:x.example", &v), 0);
    assert_true(report_contains(&fx->rep, REPORT_INFO, NULL, "1 removed"));
    /* the partners object form, as well */
    assert_int_equal(new_partner(fx, "b.example", NULL), 0);
    replace_with(fx, "{\"partners\": [{\"domain\": \"b.example\", \"dialback\": false}]}");
    partner_t p;
    assert_int_equal(store_partner_get(fx->s, "a.example", &p), FG_ENOTFOUND);
    assert_int_equal(store_partner_get(fx->s, "b.example", &p), 0);
    assert_int_equal(count_hosted(fx->s), 1);
    /* access only: the other scopes go, partners and hosted stay */
    replace_with(fx, "{\"access\": {\"global\": true}}");
    assert_int_equal(store_access_get(fx->s, "domain:x.example", &v), FG_ENOTFOUND);
    assert_int_equal(store_access_get(fx->s, "global", &v), 0);
    assert_int_equal(count_partners(fx->s), 1);
    assert_int_equal(count_hosted(fx->s), 1);
    /* settings only: nothing removed */
    replace_with(fx, "{\"settings\": {\"connection_limit\": 900}}");
    assert_int_equal(count_partners(fx->s), 1);
    assert_int_equal(count_hosted(fx->s), 1);
    assert_int_equal(store_access_get(fx->s, "global", &v), 0);
    /* an empty section present empties it */
    replace_with(fx, "{\"hosted\": []}");
    assert_int_equal(count_hosted(fx->s), 0);
    assert_int_equal(count_partners(fx->s), 1);
    replace_with(fx, "{\"partners\": [], \"access\": {}}");
    assert_int_equal(count_partners(fx->s), 0);
    assert_int_equal(store_access_get(fx->s, "global", &v), FG_ENOTFOUND);
}

static void test_import_all_or_nothing(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "existing.example", NULL), 0);
    ctx_reset(fx);
    int rc = store_import_json(fx->s, &fx->ctx, bad_import, strlen(bad_import), 0, &fx->rep);
    assert_int_equal(rc, FG_EREFUSED);
    /* every bad entry is reported, each with its subject */
    const char *subjects[] = {"partners[1]", "partners[2]", "partners[3]", "partners[4]",
                              "partners[5]", "partners[6]", "partners[7]"};
    for (size_t i = 0; i < 7; i++) {
        bool seen = false;
        for (size_t m = 0; m < fx->rep.n; m++)
            seen |= fx->rep.msg[m].severity == REPORT_ERROR &&
                    strstr(fx->rep.msg[m].subject, subjects[i]) != NULL;
        if (!seen)
            fail_msg("no error reported for %s", subjects[i]);
    }
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "domain", "twice"));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "colour", "unknown member"));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "type", "Friendly"));
    assert_true(report_contains(&fx->rep, REPORT_ERROR, NULL, "nothing was saved"));
    /* nothing saved, not even the valid first entry */
    partner_t p;
    assert_int_equal(store_partner_get(fx->s, "good.example", &p), FG_ENOTFOUND);
    assert_int_equal(count_partners(fx->s), 1);
    /* malformed JSON names the line */
    ctx_reset(fx);
    const char *broken = "{\"partners\": [\n{\"domain\": \"x.example\",}\n]}";
    assert_int_equal(store_import_json(fx->s, &fx->ctx, broken, strlen(broken), 0, &fx->rep),
                     FG_EPARSE);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, NULL, "line 2"));
    /* a newer export is refused */
    ctx_reset(fx);
    const char *newer = "{\"schema_version\": 99, \"partners\": []}";
    assert_int_equal(store_import_json(fx->s, &fx->ctx, newer, strlen(newer), 0, &fx->rep),
                     FG_EVERSION);
}

static void test_export_import_roundtrip(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "fabrikam.com", "research.fabrikam2.com,xmpp.fabrikam.com"),
                     0);
    assert_int_equal(new_partner(fx, "bücher.example", NULL), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "domain:example.org", true, &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "user:Bob@example.org", false, &fx->rep), 0);
    buf_t a, b;
    buf_init(&a, 1 << 24);
    buf_init(&b, 1 << 24);
    hosted_t h;
    hosted_defaults(&h);
    strcpy(h.domain, "example.org");
    strcpy(h.secret, "component-secret");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep), 0);
    /* an export without secrets re-imports into the same store without losing them */
    buf_t plain;
    buf_init(&plain, 1 << 24);
    assert_int_equal(store_export_json(fx->s, 0, &plain), 0);
    assert_int_equal(buf_append(&plain, "", 1), 0);
    assert_null(strstr((char *)plain.data, "component-secret"));
    assert_null(strstr((char *)plain.data, "dialback_passphrase"));
    ctx_reset(fx);
    assert_int_equal(
        store_import_json(fx->s, &fx->ctx, (const char *)plain.data, plain.len - 1, 0, &fx->rep),
        0);
    buf_free(&plain);
    assert_int_equal(store_hosted_get(fx->s, "example.org", &h), 0);
    assert_string_equal(h.secret, "component-secret");
    assert_int_equal(store_export_json(fx->s, STORE_EXPORT_SECRETS, &a), 0);

    char *dir2 = test_tmpdir();
    store_t *s2;
    char err[256];
    assert_int_equal(store_open(dir2, STORE_CREATE, &s2, err, sizeof(err)), 0);
    ctx_reset(fx);
    assert_int_equal(store_init(s2, &fx->ctx, false, &fx->rep), 0);
    ctx_reset(fx);
    int rc = store_import_json(s2, &fx->ctx, (const char *)a.data, a.len, 0, &fx->rep);
    if (rc)
        fail_msg("import: %s %s", fg_strerror(rc), fx->rep.n ? fx->rep.msg[0].text : "");
    assert_int_equal(store_export_json(s2, STORE_EXPORT_SECRETS, &b), 0);
    /* identical except the settings revision (init wrote 1, import bumped it to 2) */
    assert_true(a.len > 200);
    char *pa = strstr((char *)a.data, "\"partners\"");
    char *pb = strstr((char *)b.data, "\"partners\"");
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(a.len - (size_t)(pa - (char *)a.data), b.len - (size_t)(pb - (char *)b.data));
    assert_memory_equal(pa, pb, a.len - (size_t)(pa - (char *)a.data));
    partner_t p;
    assert_int_equal(store_partner_find(s2, "xmpp.fabrikam.com", &p), 0);
    assert_string_equal(p.domain, "fabrikam.com");
    bool v;
    assert_int_equal(store_access_effective(s2, "bob@example.org", &v), 0);
    assert_false(v);
    assert_int_equal(store_access_effective(s2, "alice@example.org", &v), 0);
    assert_true(v);
    /* re-import is a no-op; replace with fewer partners removes the rest */
    ctx_reset(fx);
    assert_int_equal(store_import_json(s2, &fx->ctx, (const char *)a.data, a.len, 0, &fx->rep), 0);
    assert_null(fx->ctx.change);
    ctx_reset(fx);
    const char *only = "[{\"domain\": \"fabrikam.com\", \"dialback\": false}]";
    assert_int_equal(
        store_import_json(s2, &fx->ctx, only, strlen(only), STORE_IMPORT_REPLACE, &fx->rep), 0);
    assert_int_equal(count_partners(s2), 1);
    assert_int_equal(store_partner_find(s2, "xmpp.fabrikam.com", &p), FG_ENOTFOUND);
    /* the file had no access section: replace leaves the access values alone */
    assert_int_equal(store_access_get(s2, "domain:example.org", &v), 0);
    assert_true(v);
    store_close(s2);
    test_rmtree(dir2);
    free(dir2);
    buf_free(&a);
    buf_free(&b);
}

static void test_access_policy(void **state)
{
    fx_t *fx = *state;
    bool v;
    assert_int_equal(store_access_effective(fx->s, "alice@example.org", &v), 0);
    assert_false(v); /* Lync's default */
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "global", true, &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "domain:example.org", false, &fx->rep), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "alice@EXAMPLE.org", true, &fx->rep), 0);
    assert_int_equal(store_access_effective(fx->s, "alice@example.org", &v), 0);
    assert_true(v); /* user beats domain */
    assert_int_equal(store_access_effective(fx->s, "bob@example.org", &v), 0);
    assert_false(v); /* domain beats global */
    assert_int_equal(store_access_effective(fx->s, "carol@example.net", &v), 0);
    assert_true(v); /* global */
    ctx_reset(fx);
    assert_int_equal(store_access_unset(fx->s, &fx->ctx, "domain:example.org", &fx->rep), 0);
    assert_int_equal(store_access_effective(fx->s, "bob@example.org", &v), 0);
    assert_true(v);
    ctx_reset(fx);
    assert_int_equal(store_access_unset(fx->s, &fx->ctx, "domain:example.org", &fx->rep),
                     FG_ENOTFOUND);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "user:nodomain", true, &fx->rep), FG_EPARSE);
    assert_true(report_contains(&fx->rep, REPORT_ERROR, "scope", "nodomain"));
}

typedef struct {
    int n;
    char verbs[16][32];
    bool secret_leak;
} audit_seen_t;

static int audit_cb(const store_audit_t *a, void *arg)
{
    audit_seen_t *s = arg;
    if (s->n < 16)
        snprintf(s->verbs[s->n], sizeof(s->verbs[0]), "%s", a->verb);
    s->n++;
    assert_true(a->time_ms > 1600000000000ll);
    assert_non_null(a->before);
    if (strstr(a->after, "dialback_passphrase\":\"") && !strstr(a->after, "(changed)"))
        s->secret_leak = true;
    return 0;
}

static void test_audit(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "contoso.com", NULL), 0);
    ctx_reset(fx);
    fx->ctx.actor = "web:admin";
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "contoso.com", STORE_ANY_REV, &fx->rep),
                     0);
    fx->ctx.actor = "test:unit";
    audit_seen_t seen = {0};
    assert_int_equal(store_audit_list(fx->s, 0, audit_cb, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.verbs[0], "init");
    assert_string_equal(seen.verbs[1], "partner new");
    assert_string_equal(seen.verbs[2], "partner remove");
    assert_false(seen.secret_leak);
    uint64_t counter, txn;
    assert_int_equal(store_meta(fx->s, &counter, &txn), 0);
    assert_int_equal(counter, 3);
    /* since the far future: nothing */
    audit_seen_t none = {0};
    assert_int_equal(store_audit_list(fx->s, INT64_MAX, audit_cb, &none), 0);
    assert_int_equal(none.n, 0);
}

static int kv_count(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_kv(void **state)
{
    fx_t *fx = *state;
    store_txn_t *t;
    assert_int_equal(store_txn_begin(fx->s, true, &t), 0);
    assert_int_equal(store_kv_put(t, STORE_DB_USERS, "admin", 5, "hash1", 5), 0);
    assert_int_equal(store_kv_put(t, STORE_DB_USERS, "alice", 5, "hash2", 5), 0);
    assert_int_equal(store_kv_put(t, STORE_DB_SESSIONS, "s:1", 3, "admin", 5), 0);
    assert_int_equal(store_kv_put(t, "partners", "x", 1, "y", 1), FG_EREFUSED);
    assert_int_equal(store_kv_put(t, "nosuchdb", "x", 1, "y", 1), FG_EREFUSED);
    assert_int_equal(store_txn_audit(t, &fx->ctx, "user add", "alice", NULL, "{}"), 0);
    assert_int_equal(store_txn_commit(t), 0);

    assert_int_equal(store_txn_begin(fx->s, false, &t), 0);
    const void *v;
    size_t vl;
    assert_int_equal(store_kv_get(t, STORE_DB_USERS, "alice", 5, &v, &vl), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "hash2", 5);
    assert_int_equal(store_kv_get(t, STORE_DB_USERS, "bob", 3, &v, &vl), FG_ENOTFOUND);
    int n = 0;
    assert_int_equal(store_kv_iterate(t, STORE_DB_USERS, "a", 1, kv_count, &n), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(store_kv_iterate(t, STORE_DB_USERS, "al", 2, kv_count, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_kv_put(t, STORE_DB_USERS, "x", 1, "y", 1), FG_EREFUSED);
    store_txn_abort(t);

    assert_int_equal(store_txn_begin(fx->s, true, &t), 0);
    assert_int_equal(store_kv_del(t, STORE_DB_USERS, "alice", 5), 0);
    store_txn_abort(t); /* aborted: alice stays */
    assert_int_equal(store_txn_begin(fx->s, false, &t), 0);
    assert_int_equal(store_kv_get(t, STORE_DB_USERS, "alice", 5, &v, &vl), 0);
    store_txn_abort(t);
}

/* ---- refusal of bad stores ---- */

static char *data_file(const char *dir)
{
    char *p = malloc(strlen(dir) + 16);
    sprintf(p, "%s/data.mdb", dir);
    return p;
}

static void test_truncated_store(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 200; i++) {
        char d[32];
        snprintf(d, sizeof(d), "p%03d.example", i);
        assert_int_equal(new_partner(fx, d, NULL), 0);
    }
    store_close(fx->s);
    fx->s = NULL;
    char *file = data_file(fx->dir);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    off_t full = sb.st_size;
    assert_true(full > 16384);
    /* Cuts that lose used pages must be refused with a clear error, never a crash. The last
       page may be one LMDB counted but never wrote: that cut may open, and must then read. */
    const off_t cuts[] = {full - 4096, full / 2 + 100, full / 2 & ~(off_t)4095, 8192, 4096, 100, 0};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(truncate(file, cuts[i]), 0);
        store_t *s = NULL;
        char err[512] = "";
        int rc = store_open(fx->dir, 0, &s, err, sizeof(err));
        if (rc == 0) {
            assert_int_equal(i, 0);
            buf_t b;
            buf_init(&b, 1 << 24);
            assert_int_equal(store_export_json(s, 0, &b), 0);
            buf_free(&b);
            store_close(s);
            continue;
        }
        assert_int_equal(rc, FG_ESTORE);
        assert_non_null(strstr(err, fx->dir));
        assert_true(strstr(err, "truncated") || strstr(err, "corrupt"));
        policy_reader_t *r = NULL;
        assert_int_equal(policy_reader_open(fx->dir, &r), FG_ESTORE);
    }
    free(file);
    /* teardown needs a store: reopen a fresh one */
    test_rmtree(fx->dir);
    char err[256];
    assert_int_equal(store_open(fx->dir, STORE_CREATE, &fx->s, err, sizeof(err)), 0);
}

static void test_corrupt_store(void **state)
{
    fx_t *fx = *state;
    store_close(fx->s);
    fx->s = NULL;
    char *file = data_file(fx->dir);
    int fd = open(file, O_WRONLY);
    assert_true(fd >= 0);
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    close(fd);
    store_t *s = NULL;
    char err[512] = "";
    assert_int_equal(store_open(fx->dir, 0, &s, err, sizeof(err)), FG_ESTORE);
    assert_non_null(strstr(err, "corrupt"));
    /* not a store at all: a directory where data.mdb is a directory */
    test_rmtree(fx->dir);
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    assert_int_equal(mkdir(file, 0700), 0);
    assert_int_equal(store_open(fx->dir, 0, &s, err, sizeof(err)), FG_ESTORE);
    free(file);
    test_rmtree(fx->dir);
    /* missing store: not found, with the hint */
    assert_int_equal(store_open(fx->dir, 0, &s, err, sizeof(err)), FG_ENOTFOUND);
    assert_int_equal(store_open(fx->dir, STORE_CREATE, &fx->s, err, sizeof(err)), 0);
}

static void put_meta_version(const char *dir, uint32_t ver)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", 0, &dbi), 0);
    uint8_t b[4] = {(uint8_t)ver, (uint8_t)(ver >> 8), 0, 0};
    MDB_val k = {14, "schema_version"}, v = {4, b};
    assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

/* The version the store was written with, not the one this build writes. */
static void test_stored_schema_version(void **state)
{
    fx_t *fx = *state;
    uint32_t v = 99;
    assert_int_equal(store_schema_version(fx->s, &v), 0);
    assert_int_equal(v, SCHEMA_VERSION);
    store_close(fx->s);
    fx->s = NULL;
    put_meta_version(fx->dir, 0); /* an older layout */
    char err[256];
    assert_int_equal(store_open(fx->dir, 0, &fx->s, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(fx->s, &v), 0);
    assert_int_equal(v, 0);
    /* a store never initialised has none */
    char *dir2 = test_tmpdir();
    store_t *s2 = NULL;
    assert_int_equal(store_open(dir2, STORE_CREATE, &s2, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(s2, &v), FG_ENOTFOUND);
    store_close(s2);
    test_rmtree(dir2);
    free(dir2);
}

static void test_newer_schema_refused(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "contoso.com", NULL), 0);
    store_close(fx->s);
    fx->s = NULL;
    put_meta_version(fx->dir, SCHEMA_VERSION + 1);
    store_t *s = NULL;
    char err[512] = "";
    assert_int_equal(store_open(fx->dir, 0, &s, err, sizeof(err)), FG_EVERSION);
    assert_non_null(strstr(err, "schema version 2"));
    assert_non_null(strstr(err, "upgrade"));
    policy_reader_t *r = NULL;
    assert_int_equal(policy_reader_open(fx->dir, &r), FG_EVERSION);
    put_meta_version(fx->dir, SCHEMA_VERSION);
    assert_int_equal(store_open(fx->dir, 0, &fx->s, err, sizeof(err)), 0);
}

/* ---- the reader ---- */

static void test_reader(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(new_partner(fx, "fabrikam.com", "research.fabrikam2.com"), 0);
    policy_reader_t *r;
    assert_int_equal(policy_reader_open(fx->dir, &r), 0);
    uint64_t g0 = policy_reader_generation(r);
    const policy_partner_t *p = policy_lookup(r, "research.fabrikam2.com");
    assert_non_null(p);
    assert_string_equal(p->domain, "fabrikam.com");
    assert_int_equal(p->rules.tls, NEG_REQUIRED);
    assert_false(p->rules.dialback);
    assert_int_equal(p->connection_limit, 20); /* gateway default */
    assert_false(p->connection_limit_set);
    assert_null(p->proxy_host);
    assert_null(policy_lookup(r, "fabrikam2.com")); /* subdomains are not implied */
    assert_null(policy_lookup(r, "unknown.example"));
    assert_null(policy_lookup_default(r));
    assert_int_equal(policy_settings(r)->keepalive_interval, 300);
    assert_false(policy_access(r, "alice@example.org"));
    assert_int_equal(policy_reader_refresh(r), 0);
    assert_int_equal(policy_reader_generation(r), g0);

    /* commits: a new partner, access on, default profile allowed */
    assert_int_equal(new_partner(fx, "contoso.com", NULL), 0);
    ctx_reset(fx);
    assert_int_equal(store_access_set(fx->s, &fx->ctx, "global", true, &fx->rep), 0);
    partner_t def;
    partner_defaults(&def);
    strcpy(def.domain, "*");
    def.sasl = NEG_OPTIONAL;
    ctx_reset(fx);
    assert_int_equal(store_partner_create(fx->s, &fx->ctx, &def, &fx->rep), 0);
    settings_t st;
    assert_int_equal(store_settings_get(fx->s, &st), 0);
    st.unknown_domains = SETTINGS_UNKNOWN_ALLOW;
    st.dialback_passphrase[0] = '\0';
    ctx_reset(fx);
    assert_int_equal(store_settings_update(fx->s, &fx->ctx, &st, STORE_ANY_REV, &fx->rep), 0);
    hosted_t h;
    hosted_defaults(&h);
    strcpy(h.domain, "example.org");
    strcpy(h.secret, "s3cret-component");
    ctx_reset(fx);
    assert_int_equal(store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep), 0);

    assert_null(policy_lookup(r, "contoso.com")); /* not before refresh */
    assert_int_equal(policy_reader_refresh(r), 1);
    assert_true(policy_reader_generation(r) > g0);
    assert_non_null(policy_lookup(r, "contoso.com"));
    assert_non_null(policy_lookup(r, "fabrikam.com"));
    assert_true(policy_access(r, "alice@example.org"));
    const policy_partner_t *d = policy_lookup_default(r);
    assert_non_null(d);
    assert_int_equal(d->rules.sasl, NEG_OPTIONAL);
    assert_null(policy_lookup(r, "*")); /* the profile is not a domain */
    const policy_hosted_t *ph = policy_lookup_hosted(r, "example.org");
    assert_non_null(ph);
    assert_string_equal(ph->secret, "s3cret-component");
    assert_true(ph->enabled);
    size_t np, nd, nh, bytes;
    policy_reader_stats(r, &np, &nd, &nh, &bytes);
    assert_int_equal(np, 2);
    assert_int_equal(nd, 3);
    assert_int_equal(nh, 1);
    assert_true(bytes > 0);
    /* uncached path agrees, for primary and additional domains */
    partner_t u;
    assert_int_equal(policy_lookup_uncached(r, "research.fabrikam2.com", &u), 0);
    assert_string_equal(u.domain, "fabrikam.com");
    assert_int_equal(policy_lookup_uncached(r, "nope.example", &u), FG_ENOTFOUND);
    assert_int_equal(policy_lookup_raw(r, "contoso.com"), 0);
    /* remove: gone after refresh */
    ctx_reset(fx);
    assert_int_equal(store_partner_remove(fx->s, &fx->ctx, "fabrikam.com", STORE_ANY_REV, &fx->rep),
                     0);
    assert_int_equal(policy_reader_refresh(r), 1);
    assert_null(policy_lookup(r, "research.fabrikam2.com"));
    policy_reader_close(r);
}

/* The reader patches its cache from the change log; after any mix of changes it must answer
   exactly as a reader that built its cache from scratch. */
static void compare_readers(policy_reader_t *a, policy_reader_t *b, int step)
{
    char d[64];
    for (int i = 0; i < 40; i++) {
        for (int sub = 0; sub < 2; sub++) {
            snprintf(d, sizeof(d), "%sp%02d.example", sub ? "x." : "", i);
            const policy_partner_t *pa = policy_lookup(a, d), *pb = policy_lookup(b, d);
            if ((pa == NULL) != (pb == NULL))
                fail_msg("step %d: %s: patched %s, rebuilt %s", step, d, pa ? "found" : "absent",
                         pb ? "found" : "absent");
            if (pa) {
                assert_string_equal(pa->domain, pb->domain);
                assert_int_equal(pa->revision, pb->revision);
                assert_int_equal(pa->rules.type, pb->rules.type);
                assert_int_equal(pa->connection_limit, pb->connection_limit);
            }
        }
        snprintf(d, sizeof(d), "h%02d.example", i);
        assert_int_equal(policy_lookup_hosted(a, d) != NULL, policy_lookup_hosted(b, d) != NULL);
        snprintf(d, sizeof(d), "u@h%02d.example", i);
        assert_int_equal(policy_access(a, d), policy_access(b, d));
    }
    assert_int_equal(policy_lookup_default(a) != NULL, policy_lookup_default(b) != NULL);
    size_t n1, d1, h1, b1, n2, d2, h2, b2;
    policy_reader_stats(a, &n1, &d1, &h1, &b1);
    policy_reader_stats(b, &n2, &d2, &h2, &b2);
    assert_int_equal(n1, n2);
    assert_int_equal(d1, d2);
    assert_int_equal(h1, h2);
}

static void test_reader_patch_matches_rebuild(void **state)
{
    fx_t *fx = *state;
    policy_reader_t *a;
    assert_int_equal(policy_reader_open(fx->dir, &a), 0);
    uint64_t x = 12345;
    char d[64], d2[64];
    for (int step = 0; step < 400; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int i = (int)(x % 40), j = (int)((x >> 8) % 40), op = (int)((x >> 16) % 8);
        snprintf(d, sizeof(d), "p%02d.example", i);
        ctx_reset(fx);
        partner_t p;
        switch (op) {
        case 0:
        case 1: /* create, maybe with an additional domain */
            snprintf(d2, sizeof(d2), "x.p%02d.example", j);
            new_partner(fx, d, op ? d2 : NULL);
            break;
        case 2: /* move an additional domain: drop it from its owner, give it to p_i */
            if (store_partner_get(fx->s, d, &p) == 0) {
                snprintf(d2, sizeof(d2), "x.p%02d.example", j);
                partner_t owner;
                if (store_partner_find(fx->s, d2, &owner) == 0 && strcmp(owner.domain, d) != 0) {
                    partner_remove_domain(&owner, d2);
                    ctx_reset(fx);
                    store_partner_update(fx->s, &fx->ctx, &owner, STORE_ANY_REV, &fx->rep);
                }
                if (partner_add_domain(&p, d2) == 0) {
                    ctx_reset(fx);
                    store_partner_update(fx->s, &fx->ctx, &p, STORE_ANY_REV, &fx->rep);
                }
            }
            break;
        case 3:
            store_partner_remove(fx->s, &fx->ctx, d, STORE_ANY_REV, &fx->rep);
            break;
        case 4: { /* change a field */
            if (store_partner_get(fx->s, d, &p) == 0) {
                p.type = (partner_type_t)((p.type + 1) % 3);
                store_partner_update(fx->s, &fx->ctx, &p, p.revision, &fx->rep);
            }
            break;
        }
        case 5: { /* hosted domain put or remove */
            hosted_t h;
            hosted_defaults(&h);
            snprintf(h.domain, sizeof(h.domain), "h%02d.example", i);
            strcpy(h.secret, "secret");
            if (store_hosted_put(fx->s, &fx->ctx, &h, STORE_PUT_CREATE, 0, &fx->rep) ==
                FG_ECONFLICT) {
                ctx_reset(fx);
                store_hosted_remove(fx->s, &fx->ctx, h.domain, &fx->rep);
            }
            break;
        }
        case 6:
            snprintf(d2, sizeof(d2), "domain:h%02d.example", j);
            store_access_set(fx->s, &fx->ctx, d2, (x >> 30) & 1, &fx->rep);
            break;
        case 7:
            if (step % 5 == 0) { /* settings change: the reader rebuilds */
                settings_t st;
                store_settings_get(fx->s, &st);
                st.partner_connection_limit = 10 + (uint32_t)(x % 50);
                st.unknown_domains = (settings_unknown_t)((x >> 3) & 1);
                st.dialback_passphrase[0] = '\0';
                store_settings_update(fx->s, &fx->ctx, &st, STORE_ANY_REV, &fx->rep);
            } else {
                partner_t def;
                partner_defaults(&def);
                strcpy(def.domain, "*");
                if (store_partner_create(fx->s, &fx->ctx, &def, &fx->rep) == FG_ECONFLICT) {
                    ctx_reset(fx);
                    store_partner_remove(fx->s, &fx->ctx, "*", STORE_ANY_REV, &fx->rep);
                }
            }
            break;
        }
        if (step % 3 == 0 || step == 399) {
            assert_true(policy_reader_refresh(a) >= 0);
            policy_reader_t *b;
            assert_int_equal(policy_reader_open(fx->dir, &b), 0);
            compare_readers(a, b, step);
            policy_reader_close(b);
        }
    }
    /* an import of more keys than one change may log: the reader rebuilds and sees it all */
    uint64_t rb0, pt0;
    policy_reader_counts(a, &rb0, &pt0);
    buf_t js;
    buf_init(&js, 1 << 20);
    assert_int_equal(buf_append_str(&js, "["), 0);
    for (int i = 0; i < 1100; i++) {
        char item[96];
        snprintf(item, sizeof(item), "%s{\"domain\":\"bulk%04d.example\",\"dialback\":false}",
                 i ? "," : "", i);
        assert_int_equal(buf_append_str(&js, item), 0);
    }
    assert_int_equal(buf_append_str(&js, "]"), 0);
    ctx_reset(fx);
    assert_int_equal(store_import_json(fx->s, &fx->ctx, (const char *)js.data, js.len, 0, &fx->rep),
                     0);
    buf_free(&js);
    assert_int_equal(policy_reader_refresh(a), 1);
    uint64_t rb1, pt1;
    policy_reader_counts(a, &rb1, &pt1);
    assert_int_equal(rb1, rb0 + 1);
    assert_non_null(policy_lookup(a, "bulk0000.example"));
    assert_non_null(policy_lookup(a, "bulk1099.example"));
    /* and one partner afterwards is patched again */
    assert_int_equal(new_partner(fx, "after-bulk.example", NULL), 0);
    assert_int_equal(policy_reader_refresh(a), 1);
    policy_reader_counts(a, &rb1, &pt1);
    assert_int_equal(pt1, pt0 + 1);
    assert_non_null(policy_lookup(a, "after-bulk.example"));
    /* a commit outside the policy (control panel session) does not invalidate the cache */
    store_txn_t *t;
    assert_int_equal(store_txn_begin(fx->s, true, &t), 0);
    assert_int_equal(store_kv_put(t, STORE_DB_SESSIONS, "s", 1, "v", 1), 0);
    assert_int_equal(store_txn_commit(t), 0);
    uint64_t g = policy_reader_generation(a);
    assert_int_equal(policy_reader_refresh(a), 0);
    assert_true(policy_reader_generation(a) > g);
    uint64_t rebuilds, patches;
    policy_reader_counts(a, &rebuilds, &patches);
    print_message("reader: %llu patched refreshes, %llu rebuilds\n", (unsigned long long)patches,
                  (unsigned long long)rebuilds);
    assert_true(patches > 50);
    assert_true(rebuilds > 0);
    policy_reader_close(a);
}

/* More commits than the change log keeps: a reader left behind rebuilds, one that keeps up
   patches throughout. On tmpfs when there is one, where a commit costs no disk flush. */
static void test_changelog_trim(void **state)
{
    char tmpl[] = "/dev/shm/fgpolicy.XXXXXX";
    char *dir = mkdtemp(tmpl) ? strdup(tmpl) : test_tmpdir();
    store_t *s;
    char err[256];
    store_ctx_t ctx = {.actor = "test"};
    assert_int_equal(store_open(dir, STORE_CREATE, &s, err, sizeof(err)), 0);
    assert_int_equal(store_init(s, &ctx, false, NULL), 0);
    free(ctx.change);
    policy_reader_t *behind, *along;
    assert_int_equal(policy_reader_open(dir, &behind), 0);
    assert_int_equal(policy_reader_open(dir, &along), 0);
    for (int i = 0; i < 4200; i++) {
        char key[64];
        snprintf(key, sizeof(key), "domain:d%d.example", i % 7);
        ctx.change = NULL;
        assert_int_equal(store_access_set(s, &ctx, key, i & 1, NULL), 0);
        free(ctx.change);
        if (i % 50 == 0)
            assert_int_equal(policy_reader_refresh(along), 1);
    }
    assert_int_equal(policy_reader_refresh(along), 1);
    assert_int_equal(policy_reader_refresh(behind), 1);
    uint64_t rb, pt;
    policy_reader_counts(behind, &rb, &pt);
    assert_int_equal(rb, 1); /* its counter fell below the log's floor */
    assert_int_equal(pt, 0);
    policy_reader_counts(along, &rb, &pt);
    assert_int_equal(rb, 0);
    assert_true(pt >= 84);
    /* last values: i = 4193..4199 -> d(i%7) = i&1 */
    for (int i = 4193; i < 4200; i++) {
        char jid[64];
        snprintf(jid, sizeof(jid), "u@d%d.example", i % 7);
        assert_int_equal(policy_access(behind, jid), i & 1);
        assert_int_equal(policy_access(along, jid), i & 1);
    }
    policy_reader_close(behind);
    policy_reader_close(along);
    store_close(s);
    test_rmtree(dir);
    free(dir);
}

static void test_readonly_open(void **state)
{
    fx_t *fx = *state;
    store_close(fx->s);
    char err[256];
    assert_int_equal(store_open(fx->dir, STORE_READONLY, &fx->s, err, sizeof(err)), 0);
    ctx_reset(fx);
    assert_int_equal(new_partner(fx, "x.example", NULL), FG_EREFUSED);
    settings_t st;
    assert_int_equal(store_settings_get(fx->s, &st), 0);
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_init_defaults),
        T(test_settings_update),
        T(test_duplicate_domains),
        T(test_hosted_and_partner_overlap),
        T(test_revision_stale),
        T(test_modify_and_what_if),
        T(test_ip_literal_domains),
        T(test_legacy_ip_partner),
        T(test_import_linear),
        T(test_import_replace_per_section),
        T(test_import_all_or_nothing),
        T(test_export_import_roundtrip),
        T(test_access_policy),
        T(test_audit),
        T(test_kv),
        T(test_truncated_store),
        T(test_corrupt_store),
        T(test_stored_schema_version),
        T(test_newer_schema_refused),
        T(test_reader),
        T(test_reader_patch_matches_rebuild),
        T(test_readonly_open),
        cmocka_unit_test(test_changelog_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
