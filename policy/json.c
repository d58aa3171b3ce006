#include "policy/json.h"

#include "core/err.h"
#include "policy/domain.h"
#include "policy/partner.h"

#include <stdio.h>
#include <string.h>

/* ---- reader ---- */

typedef struct {
    json_doc_t *d;
    size_t pos;
} rd_t;

static void skip_ws(rd_t *r)
{
    while (r->pos < r->d->len) {
        char c = r->d->text[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        r->pos++;
    }
}

static int new_tok(rd_t *r, json_type_t type, uint32_t *idx)
{
    if (r->d->ntok >= r->d->cap)
        return FG_ELIMIT;
    *idx = r->d->ntok++;
    json_tok_t *t = &r->d->tok[*idx];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->start = (uint32_t)r->pos;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Validates a string body from r->pos (after the opening quote) up to the closing quote. */
static int scan_string(rd_t *r)
{
    const unsigned char *s = (const unsigned char *)r->d->text;
    size_t len = r->d->len;
    while (r->pos < len) {
        unsigned c = s[r->pos];
        if (c == '"')
            return 0;
        if (c < 0x20)
            return FG_EPARSE;
        if (c == '\\') {
            if (++r->pos >= len)
                return FG_EPARSE;
            c = s[r->pos];
            if (c == 'u') {
                if (r->pos + 4 >= len)
                    return FG_EPARSE;
                for (int i = 1; i <= 4; i++)
                    if (hexval((char)s[r->pos + i]) < 0)
                        return FG_EPARSE;
                r->pos += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
                return FG_EPARSE;
            r->pos++;
            continue;
        }
        if (c < 0x80) {
            r->pos++;
            continue;
        }
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
        if (!n || c > 0xf4 || r->pos + n > len)
            return FG_EPARSE;
        for (size_t i = 1; i < n; i++)
            if ((s[r->pos + i] & 0xc0) != 0x80)
                return FG_EPARSE;
        r->pos += n;
    }
    return FG_EPARSE;
}

static int parse_value(rd_t *r, int depth);

static int parse_string_tok(rd_t *r)
{
    uint32_t idx;
    r->pos++; /* opening quote */
    int ret = new_tok(r, JSON_STRING, &idx);
    if (ret)
        return ret;
    ret = scan_string(r);
    if (ret)
        return ret;
    r->d->tok[idx].end = (uint32_t)r->pos;
    r->pos++;
    r->d->tok[idx].next = r->d->ntok;
    return 0;
}

static bool lit(rd_t *r, const char *w)
{
    size_t n = strlen(w);
    if (r->d->len - r->pos < n || memcmp(r->d->text + r->pos, w, n) != 0)
        return false;
    r->pos += n;
    return true;
}

static int parse_number(rd_t *r)
{
    uint32_t idx;
    int ret = new_tok(r, JSON_NUMBER, &idx);
    if (ret)
        return ret;
    const char *s = r->d->text;
    size_t len = r->d->len, p = r->pos;
    if (p < len && s[p] == '-')
        p++;
    if (p >= len || s[p] < '0' || s[p] > '9')
        return FG_EPARSE;
    if (s[p] == '0')
        p++;
    else
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    if (p < len && s[p] == '.') {
        p++;
        if (p >= len || s[p] < '0' || s[p] > '9')
            return FG_EPARSE;
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= len || s[p] < '0' || s[p] > '9')
            return FG_EPARSE;
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    r->pos = p;
    r->d->tok[idx].end = (uint32_t)p;
    r->d->tok[idx].next = r->d->ntok;
    return 0;
}

static int parse_container(rd_t *r, int depth, bool object)
{
    uint32_t idx;
    if (depth >= JSON_MAX_DEPTH)
        return FG_EPARSE;
    int ret = new_tok(r, object ? JSON_OBJECT : JSON_ARRAY, &idx);
    if (ret)
        return ret;
    r->pos++;
    skip_ws(r);
    char close = object ? '}' : ']';
    if (r->pos < r->d->len && r->d->text[r->pos] == close) {
        r->pos++;
        goto done;
    }
    for (;;) {
        skip_ws(r);
        if (object) {
            if (r->pos >= r->d->len || r->d->text[r->pos] != '"')
                return FG_EPARSE;
            ret = parse_string_tok(r);
            if (ret)
                return ret;
            skip_ws(r);
            if (r->pos >= r->d->len || r->d->text[r->pos] != ':')
                return FG_EPARSE;
            r->pos++;
        }
        ret = parse_value(r, depth + 1);
        if (ret)
            return ret;
        r->d->tok[idx].size++;
        skip_ws(r);
        if (r->pos >= r->d->len)
            return FG_EPARSE;
        char c = r->d->text[r->pos++];
        if (c == close)
            break;
        if (c != ',')
            return FG_EPARSE;
    }
done:
    r->d->tok[idx].end = (uint32_t)r->pos;
    r->d->tok[idx].next = r->d->ntok;
    return 0;
}

static int parse_value(rd_t *r, int depth)
{
    skip_ws(r);
    if (r->pos >= r->d->len)
        return FG_EPARSE;
    char c = r->d->text[r->pos];
    uint32_t idx;
    int ret;
    switch (c) {
    case '{':
        return parse_container(r, depth, true);
    case '[':
        return parse_container(r, depth, false);
    case '"':
        return parse_string_tok(r);
    case 't':
    case 'f':
    case 'n':
        ret = new_tok(r, c == 'n' ? JSON_NULL : JSON_BOOL, &idx);
        if (ret)
            return ret;
        if (!lit(r, c == 't' ? "true" : c == 'f' ? "false" : "null"))
            return FG_EPARSE;
        r->d->tok[idx].end = (uint32_t)r->pos;
        r->d->tok[idx].next = r->d->ntok;
        return 0;
    default:
        return parse_number(r);
    }
}

int json_parse(json_doc_t *d, const char *text, size_t len, json_tok_t *tok, uint32_t cap)
{
    memset(d, 0, sizeof(*d));
    d->text = text;
    d->len = len;
    d->tok = tok;
    d->cap = cap;
    if (len > UINT32_MAX - 1)
        return FG_ELIMIT;
    rd_t r = {d, 0};
    /* Skip a UTF-8 byte order mark: editors on Windows write one. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        r.pos = 3;
    int ret = parse_value(&r, 0);
    if (!ret) {
        skip_ws(&r);
        if (r.pos != len)
            ret = FG_EPARSE;
    }
    if (ret)
        d->err_pos = (uint32_t)r.pos;
    return ret;
}

static _Thread_local uint64_t steps;

uint64_t json_steps(void)
{
    return steps;
}

void json_iter_init(json_iter_t *it, const json_doc_t *d, int t)
{
    memset(it, 0, sizeof(*it));
    it->d = d;
    if (t < 0 || (uint32_t)t >= d->ntok)
        return;
    const json_tok_t *p = &d->tok[t];
    if (p->type != JSON_ARRAY && p->type != JSON_OBJECT)
        return;
    it->tok = (uint32_t)t + 1;
    it->left = p->size;
    it->object = p->type == JSON_OBJECT;
}

int json_iter_next(json_iter_t *it, int *key)
{
    if (key)
        *key = -1;
    if (!it->left)
        return -1;
    uint32_t v = it->tok;
    if (it->object) {
        if (key)
            *key = (int)v;
        v = it->d->tok[v].next;
        steps++;
    }
    it->tok = it->d->tok[v].next;
    it->left--;
    steps++;
    return (int)v;
}

int json_child(const json_doc_t *d, int t, uint32_t i)
{
    if (t < 0 || (uint32_t)t >= d->ntok)
        return -1;
    const json_tok_t *p = &d->tok[t];
    if ((p->type != JSON_ARRAY && p->type != JSON_OBJECT) || i >= p->size)
        return -1;
    uint32_t c = (uint32_t)t + 1;
    for (uint32_t k = 0; k < i; k++) {
        if (p->type == JSON_OBJECT)
            c = d->tok[c].next; /* key */
        c = d->tok[c].next;
        steps++;
    }
    if (p->type == JSON_OBJECT)
        c = d->tok[c].next;
    return (int)c;
}

int json_string(const json_doc_t *d, int t, char *out, size_t outlen)
{
    if (t < 0 || (uint32_t)t >= d->ntok || d->tok[t].type != JSON_STRING || outlen == 0)
        return FG_EPARSE;
    const char *s = d->text + d->tok[t].start, *e = d->text + d->tok[t].end;
    size_t n = 0;
    while (s < e) {
        unsigned cp;
        if (*s != '\\') {
            if (n + 1 >= outlen)
                return FG_ELIMIT;
            out[n++] = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u': {
            cp = 0;
            for (int i = 1; i <= 4; i++)
                cp = cp << 4 | (unsigned)hexval(s[i]);
            s += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (e - s < 7 || s[1] != '\\' || s[2] != 'u')
                    return FG_EPARSE;
                unsigned lo = 0;
                for (int i = 3; i <= 6; i++)
                    lo = lo << 4 | (unsigned)hexval(s[i]);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return FG_EPARSE;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return FG_EPARSE;
            }
            if (cp == 0)
                return FG_EPARSE;
            break;
        }
        default:
            cp = (unsigned char)*s;
        }
        s++;
        char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | cp >> 12);
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            u[0] = (char)(0xf0 | cp >> 18);
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (char)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (n + k >= outlen)
            return FG_ELIMIT;
        memcpy(out + n, u, k);
        n += k;
    }
    out[n] = '\0';
    return 0;
}

bool json_string_eq(const json_doc_t *d, int t, const char *s)
{
    if (t < 0 || (uint32_t)t >= d->ntok || d->tok[t].type != JSON_STRING)
        return false;
    size_t n = d->tok[t].end - d->tok[t].start;
    /* Fast path for escape-free keys, which is every key we define. */
    if (!memchr(d->text + d->tok[t].start, '\\', n))
        return strlen(s) == n && memcmp(d->text + d->tok[t].start, s, n) == 0;
    char buf[256];
    return json_string(d, t, buf, sizeof(buf)) == 0 && strcmp(buf, s) == 0;
}

int json_find(const json_doc_t *d, int obj, const char *key)
{
    if (obj < 0 || (uint32_t)obj >= d->ntok || d->tok[obj].type != JSON_OBJECT)
        return -1;
    uint32_t c = (uint32_t)obj + 1;
    for (uint32_t i = 0; i < d->tok[obj].size; i++) {
        uint32_t v = d->tok[c].next;
        steps++;
        if (json_string_eq(d, (int)c, key))
            return (int)v;
        c = d->tok[v].next;
    }
    return -1;
}

int json_bool(const json_doc_t *d, int t, bool *out)
{
    if (t < 0 || (uint32_t)t >= d->ntok || d->tok[t].type != JSON_BOOL)
        return FG_EPARSE;
    *out = d->text[d->tok[t].start] == 't';
    return 0;
}

int json_int(const json_doc_t *d, int t, int64_t min, int64_t max, int64_t *out)
{
    if (t < 0 || (uint32_t)t >= d->ntok || d->tok[t].type != JSON_NUMBER)
        return FG_EPARSE;
    const char *s = d->text + d->tok[t].start, *e = d->text + d->tok[t].end;
    bool neg = s < e && *s == '-';
    if (neg)
        s++;
    if (e - s > 19)
        return FG_EPARSE;
    uint64_t v = 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return FG_EPARSE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return FG_EPARSE;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < min || x > max)
        return FG_EPARSE;
    *out = x;
    return 0;
}

/* ---- writer ---- */

int json_put_raw(buf_t *b, const char *s)
{
    return buf_append_str(b, s);
}

int json_put_string(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int ret = buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (!ret && *p) {
        unsigned c = *p;
        char esc[8];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else if (c >= 0x80) {
            /* Copy a well-formed sequence; replace a bad byte with U+FFFD. */
            size_t k = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
            size_t i = 1;
            for (; k && i < k; i++)
                if ((p[i] & 0xc0) != 0x80)
                    break;
            if (k && i == k) {
                ret = buf_append(b, p, k);
                p += k;
                continue;
            }
            memcpy(esc, "\xef\xbf\xbd", 3);
            n = 3;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        ret = buf_append(b, esc, n);
        p++;
    }
    if (!ret)
        ret = buf_append(b, "\"", 1);
    return ret;
}

static int indent_to(buf_t *b, unsigned flags, int level)
{
    if (!(flags & JSON_F_PRETTY))
        return 0;
    int ret = buf_append(b, "\n", 1);
    for (int i = 0; !ret && i < level; i++)
        ret = buf_append(b, "  ", 2);
    return ret;
}

int json_encode_object(const schema_t *s, const void *obj, unsigned flags, int indent, buf_t *b)
{
    char val[4096];
    int ret = buf_append(b, "{", 1);
    bool first = true;
    for (size_t i = 0; !ret && i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        if ((f->flags & SCHEMA_F_SECRET) && !(flags & JSON_F_SECRETS))
            continue;
        if (!first)
            ret = buf_append(b, ",", 1);
        first = false;
        if (!ret)
            ret = indent_to(b, flags, indent + 1);
        if (!ret)
            ret = json_put_string(b, f->json);
        if (!ret)
            ret = buf_append_str(b, (flags & JSON_F_PRETTY) ? ": " : ":");
        if (ret)
            break;
        const char *base = (const char *)obj;
        switch (f->type) {
        case SCHEMA_BOOL:
        case SCHEMA_U32:
        case SCHEMA_U64:
            schema_format_value(f, obj, true, val, sizeof(val));
            ret = buf_append_str(b, val);
            break;
        case SCHEMA_U32_OPT:
            if (!*(const bool *)(base + f->offset_aux))
                ret = buf_append_str(b, "null");
            else {
                schema_format_value(f, obj, true, val, sizeof(val));
                ret = buf_append_str(b, val);
            }
            break;
        case SCHEMA_DOMAIN_LIST: {
            uint32_t c;
            memcpy(&c, base + f->offset_aux, 4);
            ret = buf_append(b, "[", 1);
            for (uint32_t k = 0; !ret && k < c && k < f->max; k++) {
                if (k)
                    ret = buf_append(b, ",", 1);
                if (!ret)
                    ret = json_put_string(b, base + f->offset + (size_t)k * DOMAIN_BUF);
            }
            if (!ret)
                ret = buf_append(b, "]", 1);
            break;
        }
        default:
            schema_format_value(f, obj, true, val, sizeof(val));
            ret = json_put_string(b, val);
            break;
        }
    }
    if (!ret && !first)
        ret = indent_to(b, flags, indent);
    if (!ret)
        ret = buf_append(b, "}", 1);
    return ret;
}

size_t json_decode_object(const schema_t *s, const json_doc_t *d, int t, void *obj, report_t *rep)
{
    size_t errors = 0;
    char err[600];
    char local[8192];
    if (t < 0 || (uint32_t)t >= d->ntok || d->tok[t].type != JSON_OBJECT) {
        report_add(rep, REPORT_ERROR, "", "expected a JSON object");
        return 1;
    }
    uint32_t c = (uint32_t)t + 1;
    for (uint32_t i = 0; i < d->tok[t].size; i++) {
        uint32_t k = c, v = d->tok[c].next;
        c = d->tok[v].next;
        char key[64];
        if (json_string(d, (int)k, key, sizeof(key))) {
            report_add(rep, REPORT_ERROR, "", "member name too long or malformed");
            errors++;
            continue;
        }
        const schema_field_t *f = NULL;
        for (size_t j = 0; j < s->nfields; j++)
            if (strcmp(s->fields[j].json, key) == 0)
                f = &s->fields[j];
        if (!f) {
            report_add(rep, REPORT_ERROR, key, "unknown member \"%s\" in a %s object", key,
                       s->name);
            errors++;
            continue;
        }
        const json_tok_t *vt = &d->tok[v];
        int rc = 0;
        err[0] = '\0';
        if (f->type == SCHEMA_U64) {
            int64_t x;
            if (json_int(d, (int)v, 0, INT64_MAX, &x)) {
                snprintf(err, sizeof(err), "not a whole number");
                rc = FG_EPARSE;
            } else {
                memcpy((char *)obj + f->offset, &(uint64_t){(uint64_t)x}, 8);
            }
        } else if (f->flags & SCHEMA_F_READONLY) {
            continue;
        } else if (f->type == SCHEMA_BOOL) {
            bool b;
            if (json_bool(d, (int)v, &b)) {
                snprintf(err, sizeof(err), "expected true or false");
                rc = FG_EPARSE;
            } else {
                *(bool *)((char *)obj + f->offset) = b;
            }
        } else if (f->type == SCHEMA_U32 || f->type == SCHEMA_U32_OPT) {
            int64_t x;
            if (vt->type == JSON_NULL && f->type == SCHEMA_U32_OPT) {
                rc = schema_parse_value(f, obj, "", err, sizeof(err));
            } else if (vt->type != JSON_NUMBER) {
                snprintf(err, sizeof(err), "expected a number%s",
                         f->type == SCHEMA_U32_OPT ? " or null" : "");
                rc = FG_EPARSE;
            } else if (json_int(d, (int)v, (int64_t)f->min, (int64_t)f->max, &x)) {
                snprintf(err, sizeof(err), "%.*s is not a whole number between %llu and %llu",
                         (int)(vt->end - vt->start > 40 ? 40 : vt->end - vt->start),
                         d->text + vt->start, (unsigned long long)f->min,
                         (unsigned long long)f->max);
                rc = FG_EPARSE;
            } else {
                snprintf(local, sizeof(local), "%lld", (long long)x);
                rc = schema_parse_value(f, obj, local, err, sizeof(err));
            }
        } else if (f->type == SCHEMA_DOMAIN_LIST) {
            if (vt->type == JSON_NULL) {
                rc = schema_parse_value(f, obj, "", err, sizeof(err));
            } else if (vt->type != JSON_ARRAY) {
                snprintf(err, sizeof(err), "expected an array of domains");
                rc = FG_EPARSE;
            } else {
                /* Element by element through the list parser the CLI uses, so a bad element
                   gets the same message ("invalid domain \"bad domain.example\": ...") and
                   a comma inside an element is part of it, not a separator. */
                const char *items[PARTNER_MAX_DOMAINS + 1];
                char list[PARTNER_MAX_DOMAINS * DOMAIN_BUF + 1024];
                size_t n = 0, used = 0;
                uint32_t e = 0;
                for (uint32_t it = v + 1; !rc && e < vt->size; e++, it = d->tok[it].next) {
                    if (e > PARTNER_MAX_DOMAINS) {
                        snprintf(err, sizeof(err), "more than %d domains", PARTNER_MAX_DOMAINS);
                        rc = FG_ELIMIT;
                    } else if (d->tok[it].type != JSON_STRING) {
                        snprintf(err, sizeof(err), "element %u is not a string", e);
                        rc = FG_EPARSE;
                    } else if (json_string(d, (int)it, list + used, sizeof(list) - used)) {
                        snprintf(err, sizeof(err), "element %u is too long or malformed", e);
                        rc = FG_ELIMIT;
                    } else {
                        items[n++] = list + used;
                        used += strlen(list + used) + 1;
                    }
                }
                if (!rc)
                    rc = schema_parse_list(f, obj, items, n, err, sizeof(err));
            }
        } else {
            if (vt->type == JSON_NULL && f->type != SCHEMA_DOMAIN && f->type != SCHEMA_ENUM) {
                rc = schema_parse_value(f, obj, "", err, sizeof(err));
            } else if (vt->type != JSON_STRING) {
                snprintf(err, sizeof(err), "expected a string");
                rc = FG_EPARSE;
            } else if ((rc = json_string(d, (int)v, local, sizeof(local))) != 0) {
                snprintf(err, sizeof(err), "string too long or malformed");
            } else {
                rc = schema_parse_value(f, obj, local, err, sizeof(err));
            }
        }
        if (rc) {
            /* schema_parse_value prefixes the CLI name; the report has the field already. */
            const char *msg = err;
            if (f->cli && strncmp(err, f->cli, strlen(f->cli)) == 0 && err[strlen(f->cli)] == ':')
                msg = err + strlen(f->cli) + 2;
            report_add(rep, REPORT_ERROR, f->json, "%s", msg[0] ? msg : "invalid value");
            errors++;
        }
    }
    return errors;
}
