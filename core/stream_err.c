#include "core/stream_err.h"

#include "core/stanza.h"

#include <stddef.h>
#include <string.h>

static const char *const stream_conditions[] = {
    "bad-format",
    "bad-namespace-prefix",
    "conflict",
    "connection-timeout",
    "host-gone",
    "host-unknown",
    "improper-addressing",
    "internal-server-error",
    "invalid-from",
    "invalid-namespace",
    "invalid-xml",
    "not-authorized",
    "not-well-formed",
    "policy-violation",
    "remote-connection-failed",
    "reset",
    "resource-constraint",
    "restricted-xml",
    "see-other-host",
    "system-shutdown",
    "undefined-condition",
    "unsupported-encoding",
    "unsupported-feature",
    "unsupported-stanza-type",
    "unsupported-version",
};

static const char *const stanza_conditions[] = {
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-connection-failed",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
};

static const char *lookup(const char *const *list, size_t n, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return list[i];
    return NULL;
}

const char *stream_err_stream_condition(const char *name)
{
    return lookup(stream_conditions, sizeof(stream_conditions) / sizeof(stream_conditions[0]),
                  name);
}

const char *stream_err_stanza_condition(const char *name)
{
    return lookup(stanza_conditions, sizeof(stanza_conditions) / sizeof(stanza_conditions[0]),
                  name);
}

int stream_err_write(buf_t *out, const char *condition, const char *text, const char *app_ns,
                     const char *app_condition)
{
    const char *c = stream_err_stream_condition(condition);
    size_t mark = out->len;
    int rc = 0;
    if (!c)
        c = "undefined-condition";
    if ((rc = buf_append_str(out, "<stream:error><")) || (rc = buf_append_str(out, c)) ||
        (rc = buf_append_str(out, " xmlns='" STANZA_NS_STREAMS "'/>")))
        goto fail;
    if (text) {
        if ((rc = buf_append_str(out, "<text xmlns='" STANZA_NS_STREAMS "' xml:lang='en'>")) ||
            (rc = stanza_write_escaped(out, text, strlen(text), false)) ||
            (rc = buf_append_str(out, "</text>")))
            goto fail;
    }
    if (app_ns && app_condition) {
        if ((rc = buf_append_str(out, "<")) || (rc = buf_append_str(out, app_condition)) ||
            (rc = buf_append_str(out, " xmlns='")) || (rc = buf_append_str(out, app_ns)) ||
            (rc = buf_append_str(out, "'/>")))
            goto fail;
    }
    if ((rc = buf_append_str(out, "</stream:error></stream:stream>")))
        goto fail;
    return 0;
fail:
    out->len = mark;
    return rc;
}

int stream_err_write_dialback(buf_t *out, const char *condition)
{
    const char *c = stream_err_stanza_condition(condition);
    size_t mark = out->len;
    int rc = 0;
    if (!c)
        c = "undefined-condition";
    if ((rc = buf_append_str(out, "<error type='cancel'><")) || (rc = buf_append_str(out, c)) ||
        (rc = buf_append_str(out, " xmlns='" STANZA_NS_STANZAS "'/></error>")))
        out->len = mark;
    return rc;
}
